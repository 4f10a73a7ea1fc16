/**
 * The HTTP client for the server extension. Every URL is built on the server's base URL
 * (e.g. /user/alice/) and sent through ServerConnection, which adds the token and XSRF
 * header the server expects.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { ApiError } from './types';
import type { GpuApi, ReclaimNotice, StatusResponse, VerifyResponse } from './types';

async function request<T>(
  endpoint: string,
  init: RequestInit,
  settings: ServerConnection.ISettings
): Promise<T> {
  const url = URLExt.join(settings.baseUrl, 'api/gpu/v1', endpoint);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(null, error instanceof Error ? error.message : String(error));
  }
  let body: any = null;
  try {
    const text = await response.text();
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null; // an HTML error page, for instance: the status code still says enough
  }
  if (!response.ok) {
    const message =
      body && typeof body.message === 'string' && body.message ? body.message : response.statusText;
    throw new ApiError(response.status, message);
  }
  return body as T;
}

/** The real client, talking to the Jupyter server this page came from. */
export function createGpuApi(
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): GpuApi {
  return {
    status: withHistory =>
      request<StatusResponse>(withHistory ? 'status' : 'status?history=0', { method: 'GET' }, settings),
    verify: () => request<VerifyResponse>('verify', { method: 'GET' }, settings),
    runVerify: () => request<VerifyResponse>('verify', { method: 'POST' }, settings),
    keep: () => request<ReclaimNotice>('reclaim/keep', { method: 'POST' }, settings)
  };
}
