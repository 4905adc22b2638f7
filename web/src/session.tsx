import { useQueryClient } from '@tanstack/react-query';
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import { api, type Locale, type Role, type Session, setCsrfToken, setUnauthorizedHandler } from './api';
import { setDisplayZone } from './format';
import { i18n, rememberLocale } from './i18n';

interface SessionState {
  /** undefined while the first check runs; null when signed out. */
  session: Session | null | undefined;
  login(name: string, password: string): Promise<void>;
  logout(): Promise<void>;
  setLocale(locale: Locale): Promise<void>;
  setTimeZone(timeZone: string): Promise<void>;
}

const SessionContext = createContext<SessionState | null>(null);

function adopt(session: Session): void {
  setCsrfToken(session.csrf_token);
  setDisplayZone(session.user.time_zone || 'UTC');
  rememberLocale(session.user.locale);
  void i18n.changeLanguage(session.user.locale);
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const queryClient = useQueryClient();

  const signedOut = useCallback(() => {
    setCsrfToken('');
    setSession(null);
    queryClient.clear();
  }, [queryClient]);

  useEffect(() => {
    setUnauthorizedHandler(signedOut);
    api.get<Session>('/api/v1/session').then(
      (s) => {
        adopt(s);
        setSession(s);
      },
      () => setSession(null),
    );
  }, [signedOut]);

  const login = useCallback(async (name: string, password: string) => {
    const s = await api.post<Session>('/api/v1/session', { name, password }, { quiet401: true });
    adopt(s);
    setSession(s);
  }, []);

  const logout = useCallback(async () => {
    await api.del('/api/v1/session').catch(() => undefined);
    signedOut();
  }, [signedOut]);

  const setLocale = useCallback(
    async (locale: Locale) => {
      rememberLocale(locale);
      await i18n.changeLanguage(locale);
      if (session) {
        setSession({ ...session, user: { ...session.user, locale } });
        await api.patch('/api/v1/me', { locale });
      }
    },
    [session],
  );

  const setTimeZone = useCallback(
    async (timeZone: string) => {
      if (!session) return;
      await api.patch('/api/v1/me', { time_zone: timeZone });
      setDisplayZone(timeZone);
      setSession({ ...session, user: { ...session.user, time_zone: timeZone } });
      queryClient.clear();
    },
    [session, queryClient],
  );

  const value = useMemo(
    () => ({ session, login, logout, setLocale, setTimeZone }),
    [session, login, logout, setLocale, setTimeZone],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): SessionState {
  const state = useContext(SessionContext);
  if (!state) throw new Error('useSession outside SessionProvider');
  return state;
}

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether the signed-in user has at least `role`. */
export function useCan(role: Role): boolean {
  const { session } = useSession();
  return session ? RANK[session.user.role] >= RANK[role] : false;
}
