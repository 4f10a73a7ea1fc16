/**
 * The GPU panel in the right sidebar: one card per GPU (`card.ts`), the idle notice, and
 * the verification checklist. All wording and numbers come from the pure view modules; this
 * file only keeps the DOM in step with the model, updating nodes in place so keyboard
 * focus and screen-reader position survive each poll.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { GpuCard } from './card';
import { CheckRow, verifyView } from './checks';
import { h, setAttr, setText } from './dom';
import { gpuIcon } from './icon';
import { idleSentence, idleWarning } from './idle';
import type { GpuModel } from './model';
import { isRetryable, problemSentence, stateView } from './states';
import type { StatusResponse } from './types';
import { usageFigures, usageSentence } from './usage';

export const PANEL_ID = 'cudaspawner-gpu-panel';

export class GpuPanel extends Widget {
  constructor(private readonly model: GpuModel) {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-GpuPanel');
    this.title.icon = gpuIcon;
    this.title.caption = 'GPU panel';
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'GPU panel');

    this._driver = h('p', { class: 'jp-GpuPanel-driver' });
    this._notice = h('div', {
      class: 'jp-GpuPanel-notice',
      role: 'status',
      'aria-live': 'polite',
      'data-role': 'status-notice'
    });
    this._cards = h('div', { class: 'jp-GpuPanel-cards', 'aria-label': 'GPUs', role: 'list' });
    this._idleText = h('p', { class: 'jp-GpuPanel-idleText' });
    this._keepButton = h(
      'button',
      { class: 'jp-Button jp-mod-styled jp-mod-warn', type: 'button', 'data-role': 'keep-gpus' },
      'Keep my GPUs'
    );
    this._keepButton.addEventListener('click', () => void this.model.keepGpus());
    this._idle = h(
      'div',
      { class: 'jp-GpuPanel-idle', role: 'alert', 'data-role': 'idle-warning' },
      this._idleText,
      this._keepButton
    );
    this._idle.hidden = true;
    this._usage = h('p', { class: 'jp-GpuPanel-usage', 'data-role': 'usage' });
    this._budget = h('ul', {
      class: 'jp-GpuPanel-budget',
      role: 'status',
      'aria-live': 'polite',
      'data-role': 'budget'
    });

    this._verifyHeadline = h('p', { class: 'jp-GpuPanel-verifyHeadline', 'data-role': 'verify-headline' });
    this._verifyMessage = h('p', { class: 'jp-GpuPanel-verifyMessage' });
    this._lastRun = h('span', { 'data-role': 'last-run' });
    this._lastRunTime = h('time', { 'data-role': 'last-run-time' });
    this._runButton = h(
      'button',
      { class: 'jp-Button jp-mod-styled jp-mod-accept jp-GpuPanel-runAgain', type: 'button' },
      'Run again'
    );
    this._runButton.addEventListener('click', () => void this._runAgain());
    this._verifyNotice = h('p', {
      class: 'jp-GpuPanel-verifyNotice',
      role: 'status',
      'aria-live': 'polite',
      'data-role': 'verify-notice'
    });
    this._checklist = h('ul', { class: 'jp-GpuPanel-checklist', 'aria-label': 'Verification checks' });
    this._versions = h('dl', { class: 'jp-GpuPanel-versions', 'aria-label': 'Versions' });
    this._verifySection = h(
      'section',
      { class: 'jp-GpuPanel-verify', 'aria-labelledby': 'jp-GpuPanel-verifyTitle' },
      h('h3', { id: 'jp-GpuPanel-verifyTitle' }, 'Verification'),
      this._verifyHeadline,
      this._verifyMessage,
      h('p', { class: 'jp-GpuPanel-lastRun' }, this._lastRun, ' ', this._lastRunTime),
      h('div', { class: 'jp-GpuPanel-actions' }, this._runButton),
      this._verifyNotice,
      this._checklist,
      this._versions
    );

    this.node.append(
      h('header', { class: 'jp-GpuPanel-header' }, h('h2', {}, 'GPUs'), this._driver),
      this._idle,
      this._usage,
      this._budget,
      this._notice,
      this._cards,
      this._verifySection
    );
    model.changed.connect(this._onModelChanged, this);
    this._renderStatus();
    this._renderVerify();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._setWatching(false);
    this.model.changed.disconnect(this._onModelChanged, this);
    super.dispose();
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._setWatching(this.isVisible);
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._setWatching(true);
  }

  protected onAfterHide(msg: Message): void {
    super.onAfterHide(msg);
    this._setWatching(false);
  }

  protected onBeforeDetach(msg: Message): void {
    this._setWatching(false);
    super.onBeforeDetach(msg);
  }

  /** Poll only while someone can see the panel (the status bar keeps its own claim). */
  private _setWatching(watching: boolean): void {
    if (watching === this._watching) {
      return;
    }
    this._watching = watching;
    if (watching) {
      this.model.acquire();
    } else {
      this.model.release();
    }
  }

  private _onModelChanged(_: GpuModel, change: 'status' | 'verify'): void {
    if (change === 'status') {
      this._renderStatus();
    } else {
      this._renderVerify();
    }
  }

  private _renderStatus(): void {
    const { status, problem } = this.model;
    this.toggleClass('jp-mod-stale', problem !== null && status !== null);
    let notice = '';
    let tone = 'ok';
    if (problem) {
      notice = problemSentence(problem, isRetryable(problem) ? this.model.retryInSeconds : null);
      tone = 'error';
    } else if (!status) {
      notice = 'Loading GPU status…';
      tone = 'info';
    } else {
      const view = stateView(status);
      notice = [view.sentence, view.nextStep].filter(Boolean).join(' ');
      tone = view.tone;
    }
    setText(this._notice, notice);
    setAttr(this._notice, 'data-tone', tone);
    this._notice.hidden = notice === '';
    setText(this._driver, status ? driverLine(status) : '');
    this._renderCards(status);
    this._renderIdle(status);
    this._renderUsage(status);
    this._updateVerifyVisibility();
  }

  /** The owner's GPU-hours and budget sentences, as the hub last sent them. */
  private _renderUsage(status: StatusResponse | null): void {
    const usage = usageFigures(status);
    this._usage.hidden = usage === null;
    setText(this._usage, usage ? usageSentence(usage) : '');
    const sentences = usage?.warnings ?? [];
    this._budget.hidden = sentences.length === 0;
    this._budget.replaceChildren(...sentences.map(s => h('li', {}, s)));
  }

  /** The reclaim service's warning, with the time left and a "keep" button. */
  private _renderIdle(status: StatusResponse | null): void {
    const warning = idleWarning(status);
    const keepNotice = this.model.keepNotice;
    this._idle.hidden = warning === null && keepNotice === '';
    this._keepButton.hidden = warning === null;
    setText(this._idleText, warning ? idleSentence(warning) : keepNotice);
  }

  /** Without the server extension there is no verification to show or re-run. */
  private _updateVerifyVisibility(): void {
    this._verifySection.hidden = this.model.problem?.kind === 'not_found' && !this.model.verify;
  }

  private _renderCards(status: StatusResponse | null): void {
    const gpus = status && status.state === 'ok' ? status.gpus : [];
    const seen = new Set<string>();
    gpus.forEach((gpu, position) => {
      seen.add(gpu.uuid);
      let card = this._cardViews.get(gpu.uuid);
      if (!card) {
        card = new GpuCard(gpu.uuid);
        card.node.setAttribute('role', 'listitem');
        this._cardViews.set(gpu.uuid, card);
      }
      card.update(gpu, this.model.history(gpu.uuid));
      if (this._cards.children[position] !== card.node) {
        this._cards.insertBefore(card.node, this._cards.children[position] ?? null);
      }
    });
    for (const [uuid, card] of this._cardViews) {
      if (!seen.has(uuid)) {
        card.node.remove();
        this._cardViews.delete(uuid);
      }
    }
    this._cards.hidden = gpus.length === 0;
  }

  private _renderVerify(): void {
    this._updateVerifyVisibility();
    const verify = this.model.verify;
    setText(this._verifyNotice, this.model.verifyNotice);
    this._verifyNotice.hidden = !this.model.verifyNotice;
    if (!verify) {
      setText(this._verifyHeadline, this.model.verifyNotice ? '' : 'Loading verification results…');
      this._runButton.disabled = this._posting;
      return;
    }
    const view = verifyView(verify, Date.now() / 1000);
    setText(this._verifyHeadline, view.headline);
    setAttr(this._verifyHeadline, 'data-tone', view.tone);
    setText(this._verifyMessage, view.message);
    this._verifyMessage.hidden = !view.message;
    setText(this._lastRun, view.lastRun);
    if (view.lastRunAt !== null) {
      const when = new Date(view.lastRunAt * 1000);
      setAttr(this._lastRunTime, 'datetime', when.toISOString());
      setText(this._lastRunTime, `(${when.toLocaleString()})`);
    } else {
      this._lastRunTime.removeAttribute('datetime');
      setText(this._lastRunTime, '');
    }
    setAttr(this._verifySection, 'aria-busy', String(view.running));
    this._runButton.disabled = view.running || this._posting;
    setText(this._runButton, view.running ? 'Running…' : 'Run again');
    const signature = JSON.stringify([view.rows, view.versions]);
    if (signature !== this._verifySignature) {
      this._verifySignature = signature;
      this._checklist.replaceChildren(...view.rows.map(checkItem));
      this._versions.replaceChildren(
        ...view.versions.flatMap(version => [h('dt', {}, version.label), h('dd', {}, version.value)])
      );
    }
  }

  private async _runAgain(): Promise<void> {
    this._posting = true;
    this._runButton.disabled = true;
    try {
      await this.model.runVerification();
    } finally {
      this._posting = false;
      this._renderVerify();
    }
  }

  private readonly _driver: HTMLElement;
  private readonly _notice: HTMLElement;
  private readonly _cards: HTMLElement;
  private readonly _idle: HTMLElement;
  private readonly _usage: HTMLElement;
  private readonly _budget: HTMLElement;
  private readonly _idleText: HTMLElement;
  private readonly _keepButton: HTMLButtonElement;
  private readonly _cardViews = new Map<string, GpuCard>();
  private readonly _verifySection: HTMLElement;
  private readonly _verifyHeadline: HTMLElement;
  private readonly _verifyMessage: HTMLElement;
  private readonly _lastRun: HTMLElement;
  private readonly _lastRunTime: HTMLElement;
  private readonly _runButton: HTMLButtonElement;
  private readonly _verifyNotice: HTMLElement;
  private readonly _checklist: HTMLElement;
  private readonly _versions: HTMLElement;
  private _verifySignature = '';
  private _posting = false;
  private _watching = false;
}

/** "Driver 550.54.15 · CUDA 12.4 · simulated". */
function driverLine(status: StatusResponse): string {
  const parts: string[] = [];
  if (status.driver_version) {
    parts.push(`Driver ${status.driver_version}`);
  }
  if (status.cuda_driver_version) {
    parts.push(`CUDA ${status.cuda_driver_version}`);
  }
  if (status.backend === 'simulated') {
    parts.push('simulated');
  }
  return parts.join(' · ');
}

function checkItem(row: CheckRow): HTMLElement {
  const details = row.details.length
    ? h(
        'dl',
        { class: 'jp-GpuPanel-checkDetails' },
        ...row.details.flatMap(detail => [h('dt', {}, detail.label), h('dd', {}, detail.value)])
      )
    : null;
  return h(
    'li',
    {
      class: `jp-GpuPanel-check jp-mod-${row.status}`,
      'data-check-id': row.id,
      'data-status': row.status
    },
    h('span', { class: 'jp-GpuPanel-checkSymbol', 'aria-hidden': 'true' }, row.symbol),
    h(
      'div',
      { class: 'jp-GpuPanel-checkBody' },
      h(
        'div',
        { class: 'jp-GpuPanel-checkHead' },
        h('span', { class: 'jp-GpuPanel-checkTitle' }, row.title),
        h('span', { class: 'jp-GpuPanel-checkStatus' }, row.statusLabel)
      ),
      row.reason ? h('p', { class: 'jp-GpuPanel-checkReason' }, row.reason) : null,
      details
    )
  );
}
