// Who is asking: the local admin (Unix socket), or a sponsor holding a token.

export interface Principal {
  sponsor: string;
  admin: boolean;
}

export const LOCAL_ADMIN: Principal = { sponsor: 'admin', admin: true };

export function canSeeSponsor(p: Principal, sponsor: string): boolean {
  return p.admin || p.sponsor === sponsor;
}
