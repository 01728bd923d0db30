// Who is asking: the local admin (Unix socket), or a sponsor holding a token.

export interface Principal {
  sponsor: string;
  admin: boolean;
  /** The token it authenticated with (none for the local admin): revoking it ends everything opened with it. */
  tokenId?: string;
  /** The web session it came through, if any: logging out ends what that session opened. */
  sessionId?: string;
}

/** The sponsor of domains created without sponsor=: the admin's own, never a tenant's. */
export const ADMIN_SPONSOR = 'admin';

export const LOCAL_ADMIN: Principal = { sponsor: ADMIN_SPONSOR, admin: true };

export function canSeeSponsor(p: Principal, sponsor: string): boolean {
  // A non-admin principal named `admin` (a token made before that name was
  // reserved) must not own every default-sponsored domain.
  return p.admin || (p.sponsor === sponsor && sponsor !== ADMIN_SPONSOR);
}

/** What the API shows of a principal (whoami, login): never how it authenticated. */
export function publicPrincipal(p: Principal): { sponsor: string; admin: boolean } {
  return { sponsor: p.sponsor, admin: p.admin };
}
