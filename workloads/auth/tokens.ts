// Signed login tokens (JWT, HS256). The key is the content of a file (a
// Kubernetes Secret mounted into the gateway); a token's `sub` is the user id
// it may log in as, `exp` bounds it, and an optional `rooms` claim lists the
// rooms it may join (absent: any room).
import { readFileSync } from 'node:fs';
import { jwtVerify, SignJWT, errors } from 'jose';
import { z } from 'zod';

const Claims = z.object({
  sub: z.string().regex(/^[1-9]\d{0,9}$/, 'sub must be the numeric user id'),
  exp: z.number(),
  rooms: z.array(z.number().int().min(1).max(0xffffffff)).optional(),
});

export type LoginClaims = { userId: number; rooms: ReadonlySet<number> | null };

export class AuthError extends Error {}

const ALGORITHM = 'HS256';
const MIN_KEY_BYTES = 32;

export function loadKey(path: string): Uint8Array {
  const key = readFileSync(path);
  const trimmed = Buffer.from(key.toString('utf8').trim());
  if (trimmed.length < MIN_KEY_BYTES) throw new Error(`auth key in ${path} is shorter than ${MIN_KEY_BYTES} bytes`);
  return trimmed;
}

export async function verifyLogin(token: string, key: Uint8Array, userId: number): Promise<LoginClaims> {
  if (!token) throw new AuthError('a token is required to log in');
  let payload: unknown;
  try {
    ({ payload } = await jwtVerify(token, key, { algorithms: [ALGORITHM], requiredClaims: ['sub', 'exp'] }));
  } catch (err) {
    const reason = err instanceof errors.JWTExpired ? 'the token has expired'
      : err instanceof errors.JWSSignatureVerificationFailed ? 'the token signature is not valid'
        : `the token is not valid (${(err as Error).message})`;
    throw new AuthError(reason);
  }
  const claims = Claims.safeParse(payload);
  if (!claims.success) throw new AuthError(`token claims: ${claims.error.issues.map((i) => i.message).join('; ')}`);
  if (Number(claims.data.sub) !== userId) throw new AuthError(`the token is for user ${claims.data.sub}, not ${userId}`);
  return { userId, rooms: claims.data.rooms ? new Set(claims.data.rooms) : null };
}

export async function signLogin(key: Uint8Array, userId: number, ttlSeconds: number, rooms?: number[]): Promise<string> {
  return new SignJWT(rooms ? { rooms } : {})
    .setProtectedHeader({ alg: ALGORITHM })
    .setSubject(String(userId))
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(key);
}

/** The join hook: a token with a `rooms` claim may join only those rooms. */
export function mayJoin(claims: LoginClaims | null, roomId: number): boolean {
  return !claims?.rooms || claims.rooms.has(roomId);
}
