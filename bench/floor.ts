/**
 * The framework floor for P2: a functions-framework HTTP function that does nothing but one Firestore create()
 * per request. The bench runs it beside macpool so the P2 figure can be read against what any function on this
 * framework and client can reach on the same machine.
 */
import { randomUUID } from 'node:crypto';
import * as ff from '@google-cloud/functions-framework';
import { Firestore } from '@google-cloud/firestore';

process.env.FIRESTORE_ENABLE_TRACING ??= 'off';
const db = new Firestore({ projectId: process.env.GOOGLE_CLOUD_PROJECT ?? 'bench-floor' });

ff.http('floor', async (req, res) => {
  const uid = (req.body as { request?: { uid?: string } }).request?.uid ?? '';
  // The same fields as a claim and as the bench's bare create().
  await db.collection('floor').doc(randomUUID()).create({
    mac: 'x',
    state: 'pending',
    cluster: 'default',
    namespace: 'bench',
    name: 'n',
    interface: 'default',
    origin: 'allocated',
    requestUid: uid,
    createdAt: new Date(),
    updatedAt: new Date(),
  });
  res
    .status(200)
    .json({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid, allowed: true } });
});
