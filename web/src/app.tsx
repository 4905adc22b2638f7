import { App as AntApp, ConfigProvider, Spin } from 'antd';
import enUSAntd from 'antd/locale/en_US';
import zhCNAntd from 'antd/locale/zh_CN';
import dayjs from 'dayjs';
import { lazy, Suspense, useEffect } from 'react';
import { useTranslation } from 'react-i18next';
import { Navigate, Route, Routes, useLocation } from 'react-router';
import { AppLayout } from './layout';
import { LoginPage } from './pages/login-page';
import { useSession } from './session';

const OverviewPage = lazy(() => import('./pages/overview-page').then((m) => ({ default: m.OverviewPage })));
const StatsPage = lazy(() => import('./pages/stats-page').then((m) => ({ default: m.StatsPage })));
const AlertsPage = lazy(() => import('./pages/alerts-page').then((m) => ({ default: m.AlertsPage })));
const InstancesPage = lazy(() =>
  import('./pages/instances-page').then((m) => ({ default: m.InstancesPage })),
);
const ClustersPage = lazy(() => import('./pages/clusters-page').then((m) => ({ default: m.ClustersPage })));
const BusinessesPage = lazy(() =>
  import('./pages/registry-pages').then((m) => ({ default: m.BusinessesPage })),
);
const BackupTypesPage = lazy(() =>
  import('./pages/registry-pages').then((m) => ({ default: m.BackupTypesPage })),
);
const UsersPage = lazy(() => import('./pages/users-page').then((m) => ({ default: m.UsersPage })));
const TokensPage = lazy(() => import('./pages/tokens-page').then((m) => ({ default: m.TokensPage })));
const AuditPage = lazy(() => import('./pages/audit-page').then((m) => ({ default: m.AuditPage })));

function Loading() {
  return (
    <div style={{ padding: 64, textAlign: 'center' }}>
      <Spin size="large" />
    </div>
  );
}

function SignedIn() {
  const { session } = useSession();
  const location = useLocation();
  if (session === undefined) return <Loading />;
  if (session === null) {
    const next = `${location.pathname}${location.search}`;
    return <Navigate to={`/login?next=${encodeURIComponent(next)}`} replace />;
  }
  return (
    <AppLayout>
      <Suspense fallback={<Loading />}>
        <Routes>
          <Route path="/" element={<OverviewPage />} />
          <Route path="/alerts" element={<AlertsPage />} />
          <Route path="/stats" element={<StatsPage />} />
          <Route path="/instances" element={<InstancesPage />} />
          <Route path="/clusters" element={<ClustersPage />} />
          <Route path="/businesses" element={<BusinessesPage />} />
          <Route path="/backup-types" element={<BackupTypesPage />} />
          <Route
            path="/users"
            element={session.user.role === 'admin' ? <UsersPage /> : <Navigate to="/" replace />}
          />
          <Route path="/tokens" element={<TokensPage />} />
          <Route
            path="/audit"
            element={session.user.role !== 'viewer' ? <AuditPage /> : <Navigate to="/" replace />}
          />
          <Route path="*" element={<Navigate to="/" replace />} />
        </Routes>
      </Suspense>
    </AppLayout>
  );
}

export function App() {
  const { i18n } = useTranslation();
  const zh = i18n.language === 'zh-CN';
  useEffect(() => {
    dayjs.locale(zh ? 'zh-cn' : 'en');
    document.documentElement.lang = zh ? 'zh-CN' : 'en';
  }, [zh]);
  return (
    <ConfigProvider
      locale={zh ? zhCNAntd : enUSAntd}
      theme={{ token: { colorPrimary: '#1668dc', borderRadius: 6 } }}
    >
      <AntApp>
        <Routes>
          <Route path="/login" element={<LoginPage />} />
          <Route path="/*" element={<SignedIn />} />
        </Routes>
      </AntApp>
    </ConfigProvider>
  );
}
