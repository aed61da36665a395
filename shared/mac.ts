/**
 * MAC addresses as integers. Inside macpool a MAC is a branded 48-bit `bigint`; strings exist only at the
 * edges (requests, Firestore document ids, logs). Comparing and stepping integers avoids the byte-wise range
 * bugs of string or byte-array arithmetic.
 */

export type Mac = bigint & { readonly __brand: 'Mac' };

export const MAC_BITS = 48n;
export const MAC_MAX = (1n << MAC_BITS) - 1n;
const MULTICAST_BIT = 1n << 40n; // least significant bit of the first octet
const LOCAL_BIT = 1n << 41n; // second least significant bit of the first octet

// The three spellings of a 48-bit MAC in common use (and the ones Go's net.ParseMAC accepts for 48 bits).
const COLON = /^([0-9a-f]{2})(?::[0-9a-f]{2}){5}$/i;
const DASH = /^([0-9a-f]{2})(?:-[0-9a-f]{2}){5}$/i;
const DOTTED = /^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$/i;

/** Parses a 48-bit MAC written `aa:bb:cc:dd:ee:ff`, `aa-bb-cc-dd-ee-ff` or `aabb.ccdd.eeff`, in any case. */
export function parseMac(text: string): Mac | undefined {
  if (!COLON.test(text) && !DASH.test(text) && !DOTTED.test(text)) return undefined;
  return BigInt('0x' + text.replace(/[:.-]/g, '')) as Mac;
}

/** Returns the integer as a MAC, or undefined when it does not fit in 48 bits. */
export function macFromBigInt(value: bigint): Mac | undefined {
  return value >= 0n && value <= MAC_MAX ? (value as Mac) : undefined;
}

/** The canonical form: lower case, colon separated (`02:00:00:00:00:0a`). Firestore ids use it too. */
export function formatMac(mac: Mac): string {
  const hex = mac.toString(16).padStart(12, '0');
  return hex.match(/../g)!.join(':');
}

/** Canonical form of a MAC string, or undefined when it does not parse. */
export function canonicalMac(text: string): string | undefined {
  const mac = parseMac(text);
  return mac === undefined ? undefined : formatMac(mac);
}

export function isMulticast(mac: Mac): boolean {
  return (mac & MULTICAST_BIT) !== 0n;
}

export function isLocallyAdministered(mac: Mac): boolean {
  return (mac & LOCAL_BIT) !== 0n;
}

/** The first octet, as KMP prints it in its multicast error (`0X3`). */
export function firstOctet(mac: Mac): number {
  return Number(mac >> 40n);
}
