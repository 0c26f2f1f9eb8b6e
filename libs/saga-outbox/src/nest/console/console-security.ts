import { randomBytes, timingSafeEqual } from 'node:crypto';

/** The cookie and form field of the double-submit CSRF token. */
export const CSRF_COOKIE = 'sage_console_csrf';
export const CSRF_FIELD = '_csrf';

/**
 * Headers on every console response: a CSP allowing only the console's own script and styles (no
 * inline script, no framing, forms posting only here), no MIME sniffing, no referrer leaking ids,
 * no caching of pages that show payloads.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};

/** A fresh token: 32 random bytes, base64url. */
export function newCsrfToken(): string {
  return randomBytes(32).toString('base64url');
}

/** One cookie's value from a Cookie header, or undefined. */
export function readCookie(
  header: string | string[] | undefined,
  name: string,
): string | undefined {
  const text = Array.isArray(header) ? header.join('; ') : (header ?? '');
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

const TOKEN = /^[A-Za-z0-9_-]{43}$/;

/**
 * Double-submit check: the form's token equals the cookie's, compared in constant time. Another
 * site can make the browser send the cookie (SameSite=Strict already stops that) but cannot read
 * it to put it in the form.
 */
export function csrfTokensMatch(cookie: string | undefined, submitted: unknown): boolean {
  if (typeof cookie !== 'string' || typeof submitted !== 'string') return false;
  if (!TOKEN.test(cookie) || !TOKEN.test(submitted)) return false;
  return timingSafeEqual(Buffer.from(cookie), Buffer.from(submitted));
}

/** The Set-Cookie value for the token, scoped to the console's path. */
export function csrfCookie(token: string, path: string, secure: boolean): string {
  return `${CSRF_COOKIE}=${token}; Path=${path}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}
