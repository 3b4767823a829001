import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../clock';

/** How long a device stays trusted after its last successful login (seconds). */
export const DEVICE_TRUST_SECONDS = 180 * 86_400;

/**
 * Trusted devices (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): a browser
 * that logged in to an account gets a token naming it as a device trusted for that account. A
 * login attempt that carries one is counted on the device alone, so an attack on the account, or
 * from the owner's address, does not lock the owner out (see LoginLimiter).
 */
export interface DeviceTokens {
  /** A token for a device now trusted for `nameKey` (a new device id, or `device` renewed). */
  issue(nameKey: string, device?: string): string;
  /** The device id when `token` was issued by this server for `nameKey` and has not expired. */
  read(token: string | undefined, nameKey: string): string | undefined;
}

/** `secret` is the server's signing secret; the key used here is derived from it, for this use only. */
export function createDeviceTokens(secret: string, clock: Clock): DeviceTokens {
  const key = Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.alloc(0), 'trusted-device-cookie', 32));
  const account = (nameKey: string) => createHash('sha256').update(nameKey).digest('base64url');
  const mac = (body: string, nameKey: string) =>
    createHmac('sha256', key)
      .update(`${body}.${account(nameKey)}`)
      .digest();
  return {
    issue(nameKey, device) {
      const body = `${device ?? randomBytes(12).toString('base64url')}.${Math.floor(clock.now() / 1000)}`;
      return `${body}.${mac(body, nameKey).toString('base64url')}`;
    },
    read(token, nameKey) {
      if (token === undefined || token.length > 200) return undefined;
      const parts = token.split('.');
      if (parts.length !== 3) return undefined;
      const [id, issuedAt, sig] = parts as [string, string, string];
      const given = Buffer.from(sig, 'base64url');
      const want = mac(`${id}.${issuedAt}`, nameKey);
      if (given.length !== want.length || !timingSafeEqual(given, want)) return undefined;
      const age = clock.now() / 1000 - Number(issuedAt);
      if (!Number.isFinite(age) || age < -60 || age > DEVICE_TRUST_SECONDS) return undefined;
      return id;
    },
  };
}
