import {
  AlertOutlined,
  AuditOutlined,
  BarChartOutlined,
  ClockCircleOutlined,
  ClusterOutlined,
  DashboardOutlined,
  DatabaseOutlined,
  DownOutlined,
  KeyOutlined,
  ProjectOutlined,
  TagsOutlined,
  TeamOutlined,
  TranslationOutlined,
  UserOutlined,
} from '@ant-design/icons';
import {
  App,
  Avatar,
  Dropdown,
  Layout,
  Menu,
  type MenuProps,
  Modal,
  Select,
  Space,
  Tag,
  Typography,
} from 'antd';
import { type ReactNode, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useLocation } from 'react-router';
import type { Locale } from './api';
import { displayZone } from './format';
import { errorText } from './page-state';
import { useSession } from './session';

const LANGUAGES: { key: Locale; label: string }[] = [
  { key: 'zh-CN', label: '简体中文' },
  { key: 'en-US', label: 'English' },
];

/** The IANA zones this browser knows, UTC first. */
const TIME_ZONES: string[] = ['UTC', ...Intl.supportedValuesOf('timeZone').filter((z) => z !== 'UTC')];

export function AppLayout({ children }: { children: ReactNode }) {
  const { t } = useTranslation();
  const { session, logout, setLocale, setTimeZone } = useSession();
  const { message } = App.useApp();
  const [zoneOpen, setZoneOpen] = useState(false);
  const [zone, setZone] = useState(displayZone());
  const location = useLocation();
  const role = session?.user.role ?? 'viewer';
  const items: MenuProps['items'] = [
    { key: '/', icon: <DashboardOutlined />, label: <Link to="/">{t('menu.overview')}</Link> },
    { key: '/alerts', icon: <AlertOutlined />, label: <Link to="/alerts">{t('menu.alerts')}</Link> },
    { key: '/stats', icon: <BarChartOutlined />, label: <Link to="/stats">{t('menu.stats')}</Link> },
    {
      key: '/instances',
      icon: <DatabaseOutlined />,
      label: <Link to="/instances">{t('menu.instances')}</Link>,
    },
    { key: '/clusters', icon: <ClusterOutlined />, label: <Link to="/clusters">{t('menu.clusters')}</Link> },
    {
      key: '/businesses',
      icon: <ProjectOutlined />,
      label: <Link to="/businesses">{t('menu.businesses')}</Link>,
    },
    {
      key: '/backup-types',
      icon: <TagsOutlined />,
      label: <Link to="/backup-types">{t('menu.backupTypes')}</Link>,
    },
    ...(role === 'admin'
      ? [{ key: '/users', icon: <TeamOutlined />, label: <Link to="/users">{t('menu.users')}</Link> }]
      : []),
    { key: '/tokens', icon: <KeyOutlined />, label: <Link to="/tokens">{t('menu.tokens')}</Link> },
    ...(role !== 'viewer'
      ? [{ key: '/audit', icon: <AuditOutlined />, label: <Link to="/audit">{t('menu.audit')}</Link> }]
      : []),
  ];
  const userMenu: MenuProps['items'] = [
    { key: 'tz', icon: <ClockCircleOutlined />, label: t('user.timeZone', { tz: displayZone() }) },
    { type: 'divider' },
    {
      key: 'language',
      icon: <TranslationOutlined />,
      label: t('user.language'),
      children: LANGUAGES.map((l) => ({
        key: `lang:${l.key}`,
        label: <span data-testid={`lang-${l.key}`}>{l.label}</span>,
      })),
    },
    { type: 'divider' },
    { key: 'logout', label: <span data-testid="logout">{t('user.logout')}</span> },
  ];
  const onUserMenu: MenuProps['onClick'] = ({ key }) => {
    if (key === 'logout') void logout();
    else if (key === 'tz') {
      setZone(displayZone());
      setZoneOpen(true);
    } else if (key.startsWith('lang:')) void setLocale(key.slice(5) as Locale);
  };
  return (
    <Layout style={{ minHeight: '100vh' }}>
      <Layout.Sider width={216} theme="dark" breakpoint="lg" collapsedWidth={64}>
        <div
          style={{
            height: 56,
            display: 'flex',
            alignItems: 'center',
            gap: 10,
            padding: '0 20px',
            color: '#fff',
            fontWeight: 600,
            fontSize: 18,
          }}
        >
          <DatabaseOutlined style={{ fontSize: 22, color: '#4096ff' }} />
          <span>{t('app.title')}</span>
        </div>
        <Menu theme="dark" mode="inline" selectedKeys={[location.pathname]} items={items} />
      </Layout.Sider>
      <Layout>
        <Layout.Header
          style={{
            background: '#fff',
            padding: '0 24px',
            display: 'flex',
            justifyContent: 'flex-end',
            alignItems: 'center',
            borderBottom: '1px solid #f0f0f0',
          }}
        >
          <Dropdown menu={{ items: userMenu, onClick: onUserMenu }} trigger={['click']}>
            <Space style={{ cursor: 'pointer' }} data-testid="user-menu">
              <Avatar size="small" icon={<UserOutlined />} />
              <Typography.Text strong>{session?.user.name}</Typography.Text>
              <Tag>{t(`role.${role}`)}</Tag>
              <DownOutlined style={{ fontSize: 10 }} />
            </Space>
          </Dropdown>
        </Layout.Header>
        <Layout.Content style={{ padding: 24, background: '#f5f7fa' }}>{children}</Layout.Content>
        <Modal
          title={t('user.chooseTimeZone')}
          open={zoneOpen}
          onCancel={() => setZoneOpen(false)}
          onOk={() =>
            void setTimeZone(zone).then(
              () => setZoneOpen(false),
              (err: unknown) => void message.error(errorText(err)),
            )
          }
        >
          <Select
            showSearch
            style={{ width: '100%' }}
            value={zone}
            onChange={setZone}
            options={TIME_ZONES.map((z) => ({ value: z, label: z }))}
          />
        </Modal>
      </Layout>
    </Layout>
  );
}
