#!/usr/bin/env node
/**
 * `macpool`: the operator CLI, a thin adapter over shared/ like the function itself. It parses the command line,
 * calls the same code and validation as the function, and prints tables for people or JSON for scripts. It talks
 * to Firestore directly: GOOGLE_CLOUD_PROJECT with Application Default Credentials, or with
 * FIRESTORE_EMULATOR_HOST for an emulator.
 *
 * Exit codes: 0 success; 1 failure, one line on stderr; 2 usage error (including a value the command refuses), one
 * line on stderr and one pointing at the command's --help.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { text } from 'node:stream/consumers';
import { Firestore } from '@google-cloud/firestore';
import cliProgress from 'cli-progress';
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  effectiveSettings,
  getRangeConfig,
  getSettings,
  listClaims,
  listNamespaces,
  NAMESPACE_ACTIONS,
  NAMESPACE_NAME,
  type NamespaceAction,
  type NamespaceView,
  poolStatus,
  releaseClaim,
  releaseFailureMessage,
  setConfig,
  setNamespaceLabel,
  type ConfigChange,
  type ListEdit,
  type StoredRange,
} from '../shared/admin.js';
import { RANGE_DOC_PATH, SETTINGS_DOC_PATH, type Settings } from '../shared/config.js';
import { withDeadline } from '../shared/deadline.js';
import { CLAIM_STATES, type ClaimState, OWNER_KINDS, type OwnerKind, releaseUnconfirmed } from '../shared/documents.js';
import { NAMESPACE_OPT_LABEL, POD_OPT_LABEL } from '../shared/kubevirt.js';
import { CLUSTER_NAME, DEFAULT_CLUSTER, parseTokens } from '../shared/env.js';
import { jsonLogger } from '../shared/log.js';
import { formatMac, parseMac } from '../shared/mac.js';
import { parseInventory, reconcile, type ReconcileReport } from '../shared/reconcile.js';
import { Store } from '../shared/store.js';
import {
  DEFAULT_TIMEOUT_SECONDS as DEFAULT_WEBHOOK_TIMEOUT_SECONDS,
  OPT_LABEL,
  OPT_MODES,
  type OptMode,
  webhookConfigurations,
  webhookConfigurationsYaml,
  type WebhookOptions,
} from '../shared/webhooks.js';
import {
  CLAIM_HEADERS,
  claimJson,
  claimRow,
  describeError,
  NAMESPACE_HEADERS,
  namespaceJson,
  namespaceRow,
  reconcileText,
  statusText,
  table,
  timestamp,
} from './format.js';

const OUTPUT_FORMATS = ['table', 'json'] as const;
type OutputFormat = (typeof OUTPUT_FORMATS)[number];
/** How long a command waits on Firestore by default; reconcile is exempt (it runs as long as its inventory needs). */
const DEFAULT_FIRESTORE_TIMEOUT_SECONDS = 30;
const DEFAULT_CLAIMS_LIMIT = 100;

interface Globals {
  readonly output: OutputFormat;
  readonly timeout: number;
}

/** A failure shown as one line on stderr, exit 1. */
class Failure extends Error {
  override readonly name = 'Failure';
}

const USAGE = { exitCode: 2, code: 'macpool.usage' } as const;

const out = (text: string) => void process.stdout.write(text);
const info = (text: string) => void process.stderr.write(`${text}\n`);
const warn = (text: string) => void process.stderr.write(`warning: ${text}\n`);
const printJson = (value: unknown) => out(JSON.stringify(value, null, 2) + '\n');

const globals = (cmd: Command) => cmd.optsWithGlobals<Globals>();
const json = (cmd: Command) => globals(cmd).output === 'json';

let store: Store | undefined;

/** The commands that write to Firestore: each names, on stderr, the project it writes to before it does. */
const WRITING_COMMANDS = new Set([
  'config set',
  'namespace ignore',
  'namespace allocate',
  'namespace reset',
  'claims release',
  'reconcile',
]);

/** `claims release` for the command of that name: its path below the program. */
function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** The Firestore the CLI talks to, for people: `my-project`, or `macpool-dev on the Firestore emulator at HOST`. */
function target(): string {
  const host = process.env.FIRESTORE_EMULATOR_HOST;
  const project = process.env.GOOGLE_CLOUD_PROJECT ?? '';
  return host ? `${project} on the Firestore emulator at ${host}` : project;
}

/**
 * The pool's Firestore, opened on first use: commands that need none (help, webhook-config) work without it.
 * A command that writes says where first, so a wrong GOOGLE_CLOUD_PROJECT or emulator shows before it matters.
 */
function openStore(cmd: Command): Store {
  const projectId = process.env.GOOGLE_CLOUD_PROJECT;
  if (!projectId) {
    throw new Failure(
      'no Google Cloud project: set GOOGLE_CLOUD_PROJECT to the project that holds the pool ' +
        '(with Application Default Credentials, or with FIRESTORE_EMULATOR_HOST for an emulator)',
    );
  }
  if (process.env.FIRESTORE_EMULATOR_HOST) process.env.METADATA_SERVER_DETECTION ??= 'none';
  process.env.FIRESTORE_ENABLE_TRACING ??= 'off';
  if (store === undefined && WRITING_COMMANDS.has(commandPath(cmd))) {
    info(cmd.opts().dryRun ? `dry run on project ${target()}: nothing is written` : `writing to project ${target()}`);
  }
  store ??= new Store(new Firestore({ projectId }));
  return store;
}

/** Runs Firestore work under the `--timeout` deadline, so an unreachable Firestore fails in time, in one line. */
function firestore<T>(cmd: Command, work: (store: Store) => Promise<T>): Promise<T> {
  const s = openStore(cmd);
  const where = process.env.FIRESTORE_EMULATOR_HOST
    ? `the Firestore emulator at ${process.env.FIRESTORE_EMULATOR_HOST}`
    : `Firestore of project ${process.env.GOOGLE_CLOUD_PROJECT}`;
  return withDeadline(() => work(s), globals(cmd).timeout * 1000, where);
}

// Parsers of option and argument values: a value they refuse is a usage error (exit 2).

/** A whole number as an option value: digits only, small enough to be exact. */
const WHOLE_NUMBER = /^\d{1,9}$/;

function wholeNumber(value: string): number {
  if (!WHOLE_NUMBER.test(value)) throw new InvalidArgumentError('expected a whole number of 0 or more.');
  return Number(value);
}

function positiveNumber(value: string): number {
  if (!WHOLE_NUMBER.test(value) || Number(value) === 0) {
    throw new InvalidArgumentError('expected a whole number of 1 or more.');
  }
  return Number(value);
}

function dnsLabel(what: string, pattern: RegExp) {
  return (value: string): string => {
    if (!pattern.test(value)) {
      throw new InvalidArgumentError(
        `${what} must be a DNS label: lower-case letters, digits and "-", at most 63 characters.`,
      );
    }
    return value;
  };
}

const clusterName = dnsLabel('a cluster name', CLUSTER_NAME);
const namespaceName = dnsLabel('a namespace name', NAMESPACE_NAME);

function macAddress(value: string): string {
  const mac = parseMac(value);
  if (mac === undefined) {
    throw new InvalidArgumentError(
      'expected a 48-bit MAC written aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff or aabb.ccdd.eeff.',
    );
  }
  return formatMac(mac);
}

/**
 * A range written `START-END`, or one MAC (a one-MAC range). The ends may use any common spelling, dashes included:
 * the split is the one dash at which both sides are MACs.
 */
function macRange(value: string): StoredRange {
  if (parseMac(value) !== undefined) return { rangeStart: value, rangeEnd: value };
  const splits = [...value.matchAll(/-/g)]
    .map((m) => [value.slice(0, m.index), value.slice(m.index + 1)] as const)
    .filter(([a, b]) => parseMac(a) !== undefined && parseMac(b) !== undefined);
  if (splits.length !== 1) {
    throw new InvalidArgumentError(
      'expected a range START-END of two 48-bit MACs (aa:bb:cc:dd:ee:ff, aa-bb-cc-dd-ee-ff or aabb.ccdd.eeff), or one MAC.',
    );
  }
  const [rangeStart, rangeEnd] = splits[0]!;
  return { rangeStart, rangeEnd };
}

const collectRanges = (value: string, previous: StoredRange[]) => [...previous, macRange(value)];

function examples(...lines: string[]): string {
  return `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
}

function clusterOption(description: string): Option {
  return new Option('--cluster <name>', description).argParser(clusterName).default(DEFAULT_CLUSTER);
}

// ---------------------------------------------------------------------------------------------------------------

function configCommands(program: Command): void {
  const config = program
    .command('config')
    .summary('read or change the range and the settings')
    .description('read or change the range (config/kubeMacPoolConfiguration) and the settings (config/settings)')
    .addHelpText(
      'after',
      examples(
        '$ macpool config get',
        '$ macpool config set --range-start 02:10:00:00:00:00 --range-end 02:10:00:00:ff:ff',
      ),
    );

  config
    .command('get')
    .description(
      'print the range as the HyperConverged CR holds it ({"rangeStart":...,"rangeEnd":...}), or the settings. ' +
        'With --all or -o json, also additionalRanges and excludedRanges',
    )
    .addArgument(new Argument('[document]', 'which document').choices(['range', 'settings']).default('range'))
    .option('--all', 'print every pool field of the range document, the lists of ranges and exclusions too')
    .addHelpText(
      'after',
      examples('$ macpool config get', '$ macpool config get --all', '$ macpool config get settings'),
    )
    .action(async (document: 'range' | 'settings', options: { all?: boolean }, cmd: Command) => {
      if (document === 'settings') {
        const view = await firestore(cmd, getSettings);
        if (!view.exists) info(`${SETTINGS_DOC_PATH} does not exist: these are the defaults`);
        if ('problem' in view) {
          warn(`the function ignores this document and keeps its previous or default settings: ${view.problem}`);
          return out(JSON.stringify(view.stored) + '\n');
        }
        return out(JSON.stringify(view.settings) + '\n');
      }
      const view = await firestore(cmd, getRangeConfig);
      if (!view.exists) info(`${RANGE_DOC_PATH} does not exist: this is the default range, which the function serves`);
      if (view.problem !== undefined) {
        warn(`the function refuses this range and keeps the last valid one it saw: ${view.problem}`);
      }
      for (const w of view.warnings) warn(w);
      if (options.all || json(cmd)) {
        if (view.usableMacs !== undefined)
          info(`${view.usableMacs} usable MACs (macpool status shows how many are free)`);
        return out(JSON.stringify({ additionalRanges: [], excludedRanges: [], ...view.fields }) + '\n');
      }
      out(JSON.stringify({ rangeStart: view.fields.rangeStart, rangeEnd: view.fields.rangeEnd }) + '\n');
    });

  config
    .command('set')
    .description(
      'validate and write the range (both ends, C1) and/or settings; other fields are kept. ' +
        'The function applies a change within 10 s',
    )
    .option('--range-start <mac>', 'first MAC of the pool, any common spelling')
    .option('--range-end <mac>', 'last MAC of the pool, inclusive')
    .option('--add-range <start-end>', 'add a range to additionalRanges (repeatable)', collectRanges, [])
    .option('--remove-range <start-end>', 'remove a range from additionalRanges (repeatable)', collectRanges, [])
    .option(
      '--exclude <mac|start-end>',
      'add an exclusion to excludedRanges: never handed out automatically (repeatable)',
      collectRanges,
      [],
    )
    .option('--unexclude <mac|start-end>', 'remove an exclusion from excludedRanges (repeatable)', collectRanges, [])
    .addOption(new Option('--opt-mode <mode>', 'which namespaces the pool serves').choices(OPT_MODES))
    .addOption(new Option('--pod-opt-mode <mode>', 'which namespaces the pool serves pods in (M4)').choices(OPT_MODES))
    .option(
      '--cooldown-seconds <n>',
      'how long a released MAC rests before it is handed out again (0-604800)',
      wholeNumber,
    )
    .option(
      '--wait-time-seconds <n>',
      'how old a pending claim must be before a reconcile releases it (30-86400)',
      wholeNumber,
    )
    .option(
      '--release-guard-percent <n>',
      'a reconcile that would release more than this share of bound claims writes nothing unless forced (0-100)',
      wholeNumber,
    )
    .addHelpText(
      'after',
      examples(
        '$ macpool config set --range-start 02:10:00:00:00:00 --range-end 02:10:00:00:ff:ff',
        '$ macpool config set --add-range 0a:00:00:00:00:00-0a:00:00:00:ff:ff --exclude 02:10:00:00:00:01',
        '$ macpool config set --opt-mode opt-in --cooldown-seconds 300',
      ),
    )
    .action(
      async (
        o: {
          rangeStart?: string;
          rangeEnd?: string;
          addRange: StoredRange[];
          removeRange: StoredRange[];
          exclude: StoredRange[];
          unexclude: StoredRange[];
          optMode?: OptMode;
          podOptMode?: OptMode;
          cooldownSeconds?: number;
          waitTimeSeconds?: number;
          releaseGuardPercent?: number;
        },
        cmd: Command,
      ) => {
        if ((o.rangeStart === undefined) !== (o.rangeEnd === undefined)) {
          cmd.error('error: --range-start and --range-end go together: the range is set as a whole', USAGE);
        }
        const settings: Partial<Settings> = {
          ...(o.optMode !== undefined ? { optMode: o.optMode } : {}),
          ...(o.podOptMode !== undefined ? { podOptMode: o.podOptMode } : {}),
          ...(o.cooldownSeconds !== undefined ? { cooldownSeconds: o.cooldownSeconds } : {}),
          ...(o.waitTimeSeconds !== undefined ? { waitTimeSeconds: o.waitTimeSeconds } : {}),
          ...(o.releaseGuardPercent !== undefined ? { releaseGuardPercent: o.releaseGuardPercent } : {}),
        };
        const lists: ListEdit[] = [
          ...o.addRange.map((range) => ({ list: 'additionalRanges', op: 'add', range }) as const),
          ...o.removeRange.map((range) => ({ list: 'additionalRanges', op: 'remove', range }) as const),
          ...o.exclude.map((range) => ({ list: 'excludedRanges', op: 'add', range }) as const),
          ...o.unexclude.map((range) => ({ list: 'excludedRanges', op: 'remove', range }) as const),
        ];
        const change: ConfigChange = {
          ...(o.rangeStart !== undefined && o.rangeEnd !== undefined
            ? { range: { rangeStart: o.rangeStart, rangeEnd: o.rangeEnd } }
            : {}),
          ...(lists.length > 0 ? { lists } : {}),
          ...(Object.keys(settings).length > 0 ? { settings } : {}),
        };
        if (change.range === undefined && change.lists === undefined && change.settings === undefined) {
          cmd.error(
            'error: nothing to set: give --range-start and --range-end, --add-range, --remove-range, --exclude, ' +
              '--unexclude, --opt-mode, --pod-opt-mode, --cooldown-seconds, --wait-time-seconds or --release-guard-percent',
            USAGE,
          );
        }
        const result = await firestore(cmd, (s) => setConfig(s, change, new Date()));
        if (!result.ok) throw new Failure(result.reason);
        for (const w of result.warnings) warn(w);
        if (json(cmd)) return printJson({ ...change, warnings: result.warnings });
        if (change.range) {
          out(`${RANGE_DOC_PATH}: rangeStart=${change.range.rangeStart} rangeEnd=${change.range.rangeEnd}\n`);
        }
        for (const e of lists) {
          const text =
            e.range.rangeStart === e.range.rangeEnd ? e.range.rangeStart : `${e.range.rangeStart}-${e.range.rangeEnd}`;
          out(`${RANGE_DOC_PATH}: ${e.list} ${e.op === 'add' ? '+' : '-'} ${text}\n`);
        }
        if (change.settings) {
          const fields = Object.entries(change.settings).map(([k, v]) => `${k}=${String(v)}`);
          out(`${SETTINGS_DOC_PATH}: ${fields.join(' ')}\n`);
        }
        info('the function applies the change within 10 s');
      },
    );
}

const NAMESPACE_DESCRIPTIONS: Record<NamespaceAction, string> = {
  ignore: `set ${OPT_LABEL}=ignore: in opt-out mode the pool leaves the namespaces' VMs alone`,
  allocate: `set ${OPT_LABEL}=allocate: in opt-in mode only such namespaces are served`,
  reset: `remove the ${OPT_LABEL} label: the namespaces follow the opt mode's default`,
};

function printNamespaces(cmd: Command, cluster: string, optMode: OptMode, views: readonly NamespaceView[]): void {
  if (json(cmd)) return printJson({ cluster, optMode, namespaces: views.map(namespaceJson) });
  if (views.length > 0) out(table(NAMESPACE_HEADERS, views.map(namespaceRow)));
}

function namespaceCommands(program: Command): void {
  const namespace = program
    .command('namespace')
    .summary('label namespaces ignore/allocate, or list them')
    .description(
      'label namespaces in the pool (clusters/{cluster}/namespaces/{namespace}) and list them. The webhook ' +
        "selector reads the cluster's own labels, and the namespace sync mirrors them here: label the " +
        'namespace in the cluster too',
    )
    .addHelpText(
      'after',
      examples('$ macpool namespace ignore kube-system lab --cluster east', '$ macpool namespace list'),
    );

  for (const action of NAMESPACE_ACTIONS) {
    namespace
      .command(action)
      .description(NAMESPACE_DESCRIPTIONS[action])
      .argument('<namespaces...>', 'namespace names', (value: string, previous: string[] = []) => [
        ...previous,
        namespaceName(value),
      ])
      .addOption(clusterOption('the cluster the namespaces belong to'))
      .option('--pods', `the pods' label ${POD_OPT_LABEL} (and podOptMode) instead of the VMs'`)
      .addHelpText(
        'after',
        examples(
          `$ macpool namespace ${action} lab-a lab-b --cluster east`,
          `$ macpool namespace ${action} lab-a --pods`,
        ),
      )
      .action(async (namespaces: string[], o: { cluster: string; pods?: boolean }, cmd: Command) => {
        const { optMode, views } = await firestore(cmd, async (s) => {
          const settings = effectiveSettings(await getSettings(s));
          const optMode = o.pods ? settings.podOptMode : settings.optMode;
          const label = o.pods ? POD_OPT_LABEL : NAMESPACE_OPT_LABEL;
          return { optMode, views: await setNamespaceLabel(s, o.cluster, namespaces, action, optMode, label) };
        });
        printNamespaces(cmd, o.cluster, optMode, views);
      });
  }

  namespace
    .command('list')
    .description('list the namespace documents of a cluster: their opt label, and whether the pool serves them')
    .addOption(clusterOption('the cluster to list'))
    .option('--pods', `the pods' label ${POD_OPT_LABEL} (and podOptMode) instead of the VMs'`)
    .addHelpText('after', examples('$ macpool namespace list --cluster east', '$ macpool namespace list --pods'))
    .action(async (o: { cluster: string; pods?: boolean }, cmd: Command) => {
      const { optMode, views } = await firestore(cmd, async (s) => {
        const settings = effectiveSettings(await getSettings(s));
        const optMode = o.pods ? settings.podOptMode : settings.optMode;
        const label = o.pods ? POD_OPT_LABEL : NAMESPACE_OPT_LABEL;
        return { optMode, views: await listNamespaces(s, o.cluster, optMode, label) };
      });
      if (!json(cmd)) {
        const unlisted = optMode === 'opt-out' ? 'served' : 'not served';
        info(`cluster ${o.cluster}, ${optMode} mode: namespaces without a document are ${unlisted}`);
      }
      printNamespaces(cmd, o.cluster, optMode, views);
    });
}

function statusCommand(program: Command): void {
  program
    .command('status')
    .summary('pool figures: size, claimed, released, free, utilization')
    .description(
      'pool figures: the range and its size, claimed, released (cooling down or not), free and utilization, ' +
        'claims by state, and claims outside the range. Counts only: no claim is read',
    )
    .addHelpText('after', examples('$ macpool status', '$ macpool status -o json'))
    .action(async (_o: object, cmd: Command) => {
      const result = await firestore(cmd, (s) => poolStatus(s, new Date()));
      if (!result.ok) throw new Failure(`${target()}: ${result.reason}; fix it with macpool config set`);
      for (const w of result.status.rangeWarnings) warn(w);
      if (json(cmd)) {
        const emulatorHost = process.env.FIRESTORE_EMULATOR_HOST;
        return printJson({
          project: process.env.GOOGLE_CLOUD_PROJECT,
          ...(emulatorHost ? { emulatorHost } : {}),
          ...result.status,
        });
      }
      out(statusText(result.status, target()));
    });
}

function claimsCommands(program: Command): void {
  const claims = program
    .command('claims')
    .summary('list claims, or release one')
    .description('list claims (macs/{mac}) or release one')
    .addHelpText(
      'after',
      examples('$ macpool claims list --namespace lab', '$ macpool claims release 02:00:00:00:00:0a'),
    );

  claims
    .command('list')
    .description('list claims in MAC order, filtered by owner and state')
    .addOption(new Option('--cluster <name>', 'only claims of this cluster').argParser(clusterName))
    .addOption(new Option('--namespace <name>', 'only claims of this namespace').argParser(namespaceName))
    .addOption(new Option('--kind <kind>', 'only claims of VMs, or of pods').choices(OWNER_KINDS))
    .addOption(new Option('--vm <name>', 'only claims of the VM of this name').conflicts(['pod']))
    .option('--pod <name>', 'only claims of the pod of this name')
    .addOption(new Option('--state <state>', 'only claims in this state').choices(CLAIM_STATES))
    .addOption(
      new Option('--limit <n>', 'list at most this many').argParser(positiveNumber).default(DEFAULT_CLAIMS_LIMIT),
    )
    .addHelpText(
      'after',
      examples(
        '$ macpool claims list --cluster east --namespace lab --vm web-1',
        '$ macpool claims list --state pending -o json',
        '$ macpool claims list --kind pod --namespace lab',
      ),
    )
    .action(
      async (
        o: {
          cluster?: string;
          namespace?: string;
          kind?: OwnerKind;
          vm?: string;
          pod?: string;
          state?: ClaimState;
          limit: number;
        },
        cmd: Command,
      ) => {
        // --vm and --pod name an owner of that kind; --kind says which kind when no name is given.
        const kind = o.vm !== undefined ? 'vm' : o.pod !== undefined ? 'pod' : o.kind;
        if (kind !== undefined && o.kind !== undefined && kind !== o.kind) {
          cmd.error(`error: --kind ${o.kind} contradicts --${kind}: a ${kind} name lists ${kind} claims`, USAGE);
        }
        const name = o.vm ?? o.pod;
        const filter = {
          ...(o.cluster !== undefined ? { cluster: o.cluster } : {}),
          ...(o.namespace !== undefined ? { namespace: o.namespace } : {}),
          ...(kind !== undefined ? { kind } : {}),
          ...(name !== undefined ? { name } : {}),
          ...(o.state !== undefined ? { state: o.state } : {}),
        };
        const list = await firestore(cmd, (s) => listClaims(s, filter, o.limit));
        if (list.matching !== undefined) {
          info(`showing ${list.claims.length} of ${list.matching} matching claims; raise --limit to see more`);
        }
        if (json(cmd)) return printJson(list.claims.map(claimJson));
        if (list.claims.length === 0) return info('no claims match');
        out(table(CLAIM_HEADERS, list.claims.map(claimRow)));
      },
    );

  claims
    .command('release')
    .description(
      'release a claim by hand, for a VM (or pod) known to no longer carry the MAC: the release counts as confirmed ' +
        '(U6), so another VM may ask for the MAC explicitly at once; automatic allocation waits for the cool-down ' +
        '(config/settings) unless --now',
    )
    .argument('<mac>', 'the MAC, in any common spelling', macAddress)
    .option(
      '--now',
      'also end the cool-down: automatic allocation may hand the MAC out right away; on a claim already released ' +
        '(by an UPDATE or DELETE the cluster has not shown yet), confirms that release',
    )
    .addHelpText(
      'after',
      examples('$ macpool claims release 02:00:00:00:00:0a', '$ macpool claims release 02-00-00-00-00-0A --now'),
    )
    .action(async (mac: string, o: { now?: boolean }, cmd: Command) => {
      const outcome = await firestore(cmd, (s) => releaseClaim(s, mac, { now: new Date(), immediate: o.now === true }));
      switch (outcome.kind) {
        case 'not-found':
        case 'corrupt':
        case 'conflict':
          throw new Failure(releaseFailureMessage(outcome));
        case 'already-released': {
          const unconfirmed = releaseUnconfirmed(outcome.claim);
          if (json(cmd))
            return printJson({ mac, state: 'released', unconfirmed, freeAt: outcome.freeAt, changed: false });
          if (unconfirmed && outcome.freeAt.getTime() > Date.now()) {
            return out(
              `${mac} is already released by a ${outcome.claim.releasedBy}, not yet confirmed: the cluster has not shown ` +
                `its ${outcome.claim.kind === 'pod' ? 'pod' : 'VM'} without it, so other explicit requests are refused ` +
                `until ${timestamp(outcome.freeAt)}; if it is gone, confirm with: macpool claims release ${mac} --now\n`,
            );
          }
          return out(
            `${mac} is already released; automatic allocation may hand it out from ${timestamp(outcome.freeAt)}\n`,
          );
        }
        case 'released': {
          const p = outcome.previous;
          if (p.state !== 'released') {
            warn(
              `the claim belonged to VM ${p.namespace}/${p.name || '(generateName)'} of cluster ${p.cluster} (${p.state}); ` +
                'if that VM still carries the MAC, another VM asking for it explicitly may get it now, and automatic ' +
                'allocation once the cool-down ends',
            );
          }
          if (json(cmd)) {
            return printJson({
              mac,
              state: 'released',
              releasedAt: outcome.releasedAt,
              freeAt: outcome.freeAt,
              changed: true,
            });
          }
          return out(
            o.now === true
              ? `released ${mac}; automatic allocation may hand it out now\n`
              : `released ${mac}; automatic allocation may hand it out from ${timestamp(outcome.freeAt)}\n`,
          );
        }
        default:
          return outcome satisfies never;
      }
    });
}

/** Reads one `kubectl get ... -o json` output, from a file or (`-`) standard input. */
async function readJson(file: string): Promise<unknown> {
  const name = file === '-' ? 'standard input' : file;
  let content: string;
  try {
    content = file === '-' ? await text(process.stdin) : await readFile(file, 'utf8');
  } catch (error) {
    throw new Failure(`cannot read ${name}: ${describeError(error)}`);
  }
  try {
    return JSON.parse(content);
  } catch (error) {
    const reason = error instanceof SyntaxError ? error.message.replace(/\s+/g, ' ') : describeError(error);
    throw new Failure(`${name} is not JSON (${reason}); expected the output of kubectl get virtualmachines -A -o json`);
  }
}

function reconcileCommand(program: Command): void {
  program
    .command('reconcile')
    .summary("align the claims with the cluster's VMs and pods (kubectl get ... -o json)")
    .description(
      'align the claims with the VMs the cluster stores: bind the claims of stored VMs, release claims whose VM ' +
        'is gone or no longer carries the MAC (once older than the wait time), claim the MACs stored VMs carry ' +
        'without a claim, and report collisions. With namespaces in the input, their documents are made to match. ' +
        'Pods on Multus networks are reconciled the same way when the input lists a pod (or with --pods); ' +
        'otherwise pod claims are left alone',
    )
    .addOption(
      new Option(
        '-f, --filename <file>',
        'output of kubectl get virtualmachines[,namespaces] -A -o json; - for stdin; repeatable',
      )
        .argParser((value: string, previous: string[] = []) => [...previous, value])
        .makeOptionMandatory(),
    )
    .addOption(clusterOption('the cluster the inventory comes from'))
    .option('--dry-run', 'report what the run would bind, release, confirm and claim, and write nothing')
    .option(
      '--pods',
      'the input lists every pod on a Multus network, even if it lists none (their claims are then released)',
    )
    .option('--full', 'read every claim of the cluster, not only the cells whose figures differ from the input (R7)')
    .option(
      '--force',
      'write even when the inventory looks incomplete: it lists no VM yet would release bound claims, or it would ' +
        'release more than releaseGuardPercent of them (config/settings, default 10)',
    )
    .addHelpText(
      'after',
      examples(
        '$ kubectl get virtualmachines,namespaces -A -o json | macpool reconcile -f - --cluster east --dry-run',
        '$ kubectl get virtualmachines,namespaces -A -o json | macpool reconcile -f - --cluster east',
        '$ macpool reconcile -f vms.json -f namespaces.json --cluster east -o json',
        '$ macpool reconcile -f vms.json -f pods.json --pods --cluster east',
      ),
    )
    .action(
      async (
        o: { filename: string[]; cluster: string; dryRun?: boolean; force?: boolean; pods?: boolean; full?: boolean },
        cmd: Command,
      ) => {
        if (o.filename.filter((f) => f === '-').length > 1) {
          cmd.error('error: standard input (-) can be read once', USAGE);
        }
        const inputs = await Promise.all(o.filename.map(readJson));
        const inventory = parseInventory(inputs.length === 1 ? inputs[0] : inputs, o.pods === true);
        const s = openStore(cmd);
        // People at a terminal see a progress bar; pipes and logs get none.
        let bar: cliProgress.SingleBar | undefined;
        const onProgress = (done: number, total: number) => {
          if (bar === undefined) {
            bar = new cliProgress.SingleBar(
              {
                stream: process.stderr,
                format: 'reconcile [{bar}] {value}/{total} writes | {eta_formatted}',
                clearOnComplete: true,
              },
              cliProgress.Presets.shades_classic,
            );
            bar.start(total, done);
          } else bar.update(done);
        };
        let report: ReconcileReport;
        try {
          report = await reconcile(s, inventory, {
            cluster: o.cluster,
            mode: o.dryRun ? 'plan' : 'commit',
            force: o.force === true,
            full: o.full === true,
            // Structured lines (the mac-collision event among them) on stderr, for log-based metrics when run as a job.
            log: jsonLogger((line) => process.stderr.write(line + '\n')),
            ...(process.stderr.isTTY ? { onProgress } : {}),
          });
        } finally {
          bar?.stop();
        }
        if (json(cmd)) printJson(report);
        else out(reconcileText(report, o.cluster));
        // R8: the report is printed either way; a refused run is a failure, so a job running it fails visibly.
        if (report.refused !== undefined) {
          throw new Failure(
            `reconcile refused, nothing written: ${report.refused}; --force if the inventory is complete`,
          );
        }
      },
    );
}

/**
 * Wraps the action of an offline command whose every failure is a value it refuses (webhook-config): such a
 * failure is a usage error, exit 2, like a value the option parsers refuse.
 */
function refusalsAreUsageErrors<A extends unknown[]>(action: (...args: A) => void): (...args: A) => void {
  return (...args) => {
    try {
      action(...args);
    } catch (error) {
      if (error instanceof CommanderError) throw error;
      (args.at(-1) as Command).error(`error: ${describeError(error)}`, USAGE);
    }
  };
}

/** The cluster's token: `--token`, else its first entry in MACPOOL_TOKENS (the function's own variable). */
function clusterToken(cmd: Command, cluster: string, given: string | undefined): string {
  if (given !== undefined) return given;
  const tokens = process.env.MACPOOL_TOKENS?.trim();
  if (!tokens) {
    cmd.error(
      `error: no token for cluster ${cluster}: pass --token TOKEN, or set MACPOOL_TOKENS="${cluster}=TOKEN,..." ` +
        'as the function has it',
      USAGE,
    );
  }
  const entry = parseTokens(tokens).find((t) => t.cluster === cluster);
  if (entry === undefined) {
    cmd.error(
      `error: MACPOOL_TOKENS has no token for cluster ${cluster}: add "${cluster}=TOKEN" or pass --token TOKEN`,
      USAGE,
    );
  }
  return entry.token;
}

interface WebhookCommandOptions {
  url: string;
  cluster: string;
  token?: string;
  optMode: OptMode;
  podOptMode: OptMode;
  timeoutSeconds: number;
}

function webhookConfigCommand(program: Command): void {
  program
    .command('webhook-config')
    .summary("print the cluster's webhook configurations as YAML")
    .description(
      "print the cluster's MutatingWebhookConfiguration and ValidatingWebhookConfiguration as YAML, for " +
        'kubectl apply -f - (offline: Firestore is not read). Each webhook URL carries the credential of its own ' +
        'role, derived from the cluster secret; the secret itself never appears in the output',
    )
    .requiredOption('--url <url>', "the function's https URL")
    .addOption(clusterOption('the cluster whose credentials the webhooks carry'))
    .option('--token <token>', 'the cluster secret (default: the first token of --cluster in MACPOOL_TOKENS)')
    .addOption(
      new Option('--opt-mode <mode>', 'namespace selection; match config/settings optMode')
        .choices(OPT_MODES)
        .default('opt-out'),
    )
    .addOption(
      new Option('--pod-opt-mode <mode>', "the pod webhooks' namespace selection; match config/settings podOptMode")
        .choices(OPT_MODES)
        .default('opt-in'),
    )
    .addOption(
      new Option('--timeout-seconds <n>', 'webhook timeout (1-30)')
        .argParser(wholeNumber)
        .default(DEFAULT_WEBHOOK_TIMEOUT_SECONDS),
    )
    .addHelpText(
      'after',
      examples(
        '$ MACPOOL_TOKENS="east=$TOKEN" macpool webhook-config --url https://macpool-abc123-ew.a.run.app --cluster east | kubectl apply -f -',
      ),
    )
    .action(
      refusalsAreUsageErrors((o: WebhookCommandOptions, cmd: Command) => {
        const options: WebhookOptions = {
          url: o.url,
          token: clusterToken(cmd, o.cluster, o.token),
          optMode: o.optMode,
          podOptMode: o.podOptMode,
          timeoutSeconds: o.timeoutSeconds,
        };
        if (!json(cmd)) return out(webhookConfigurationsYaml(options));
        const { mutating, validating } = webhookConfigurations(options);
        printJson({ apiVersion: 'v1', kind: 'List', items: [mutating, validating] });
      }),
    );
}

/** The version in package.json (dist/cli/macpool.js is two levels below it). */
function packageVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  return (pkg as { version?: string }).version ?? 'unknown';
}

function buildProgram(): Command {
  const program = new Command('macpool')
    .description('Operate a macpool MAC address pool: its configuration, namespaces, claims and webhooks, in Firestore')
    // Before the subcommands are added: they inherit these settings.
    .exitOverride()
    .configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
    })
    .version(packageVersion())
    .addOption(new Option('-o, --output <format>', 'output format').choices(OUTPUT_FORMATS).default('table'))
    .addOption(
      new Option('--timeout <seconds>', 'give up on Firestore after this long (reconcile excepted)')
        .argParser(positiveNumber)
        .default(DEFAULT_FIRESTORE_TIMEOUT_SECONDS),
    )
    .addHelpText(
      'after',
      examples('$ GOOGLE_CLOUD_PROJECT=my-macpool macpool status', '$ macpool claims list --namespace lab -o json') +
        '\nEnvironment: GOOGLE_CLOUD_PROJECT (required for Firestore), FIRESTORE_EMULATOR_HOST, MACPOOL_TOKENS.\n' +
        'Exit codes: 0 success, 1 failure (reason on stderr), 2 usage error.\n',
    );
  configCommands(program);
  namespaceCommands(program);
  statusCommand(program);
  claimsCommands(program);
  reconcileCommand(program);
  webhookConfigCommand(program);
  pointUsageErrorsAtHelp(program);
  return program;
}

/** A usage error prints its message, then one line naming the command's --help rather than the whole help. */
function pointUsageErrorsAtHelp(cmd: Command, path = cmd.name()): void {
  cmd.showHelpAfterError(`run '${path} --help' for usage`);
  for (const sub of cmd.commands) pointUsageErrorsAtHelp(sub, `${path} ${sub.name()}`);
}

async function main(argv: readonly string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    // Commander has printed the message and the pointer to --help already; only --help and --version end with 0.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    process.stderr.write(`error: ${error instanceof Failure ? error.message : describeError(error)}\n`);
    return 1;
  }
}

process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0); // `macpool claims list | head`
  throw error;
});
const code = await main(process.argv);
// Exit once the output is flushed: a Firestore call abandoned at --timeout would otherwise keep the process alive.
process.stdout.write('', () => process.exit(code));
