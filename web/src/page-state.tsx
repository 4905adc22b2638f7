import { CheckOutlined, CopyOutlined } from '@ant-design/icons';
import { Alert, Button, Empty, Spin } from 'antd';
import { type ReactNode, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { ApiError } from './api';

/** The message to show for a failed call: the server's own words. */
export function errorText(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Loading, error and empty states around a page's content. */
export function PageState(props: {
  loading: boolean;
  error: unknown;
  empty?: boolean;
  onRetry?: () => void;
  children: ReactNode;
}) {
  const { t } = useTranslation();
  if (props.error) {
    return (
      <Alert
        type="error"
        showIcon
        title={t('common.error')}
        description={errorText(props.error)}
        action={
          props.onRetry ? (
            <Button size="small" onClick={props.onRetry}>
              {t('common.retry')}
            </Button>
          ) : undefined
        }
      />
    );
  }
  if (props.loading) {
    return (
      <div style={{ padding: 48, textAlign: 'center' }}>
        <Spin description={t('common.loading')} />
      </div>
    );
  }
  if (props.empty) return <Empty description={t('common.empty')} />;
  return <>{props.children}</>;
}

async function writeClipboard(text: string): Promise<void> {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Plain http pages have no clipboard API: fall back to a selected textarea.
    const area = document.createElement('textarea');
    area.value = text;
    document.body.appendChild(area);
    area.select();
    document.execCommand('copy');
    area.remove();
  }
}

export function CopyButton({ text, testId }: { text: string; testId?: string }) {
  const { t } = useTranslation();
  const [copied, setCopied] = useState(false);
  return (
    <Button
      data-testid={testId}
      icon={copied ? <CheckOutlined /> : <CopyOutlined />}
      onClick={() => {
        void writeClipboard(text).then(() => setCopied(true));
      }}
    >
      {copied ? t('common.copied') : t('common.copy')}
    </Button>
  );
}
