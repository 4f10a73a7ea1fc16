/**
 * The status-bar item: "GPU 0: 37% · 11.2/80 GiB", "No GPU", or "GPU: unavailable" with
 * the reason in its tooltip. Clicking it (or Enter/Space on it) opens the GPU panel.
 */
import { Widget } from '@lumino/widgets';

import { h, setAttr, setText } from './dom';
import { gpuSummary, statusBarText } from './format';
import { gpuIcon } from './icon';
import { idleSentence, idleStatusText, idleWarning } from './idle';
import type { GpuModel } from './model';
import { isRetryable, problemSentence, stateView } from './states';

/** The tooltip: every GPU when all is well, otherwise the sentence the panel shows. */
function tooltip(model: GpuModel): string {
  const { status, problem } = model;
  if (problem) {
    return problemSentence(problem, isRetryable(problem) ? model.retryInSeconds : null);
  }
  if (!status) {
    return 'Loading GPU status…';
  }
  const warning = idleWarning(status);
  if (warning) {
    return `${idleSentence(warning)}\nClick to open the GPU panel and keep it.`;
  }
  const view = stateView(status);
  const lines = view.sentence ? [view.sentence] : status.gpus.map(gpuSummary);
  return [...lines, 'Click to open the GPU panel.'].join('\n');
}

export class GpuStatusItem extends Widget {
  constructor(
    private readonly model: GpuModel,
    private readonly open: () => void
  ) {
    super();
    this.addClass('jp-GpuStatusItem');
    this.node.setAttribute('role', 'button');
    this.node.setAttribute('tabindex', '0');
    this._text = h('span', { class: 'jp-GpuStatusItem-text', 'aria-live': 'off' });
    const icon = h('span', { class: 'jp-GpuStatusItem-icon', 'aria-hidden': 'true' });
    gpuIcon.element({ container: icon, height: '14px', width: '14px' });
    this.node.append(icon, this._text);
    this.node.addEventListener('click', () => this.open());
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        this.open();
      }
    });
    model.changed.connect(this._update, this);
    // The status bar is always visible, so it keeps the model polling for as long as it lives.
    model.acquire();
    this._update();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.changed.disconnect(this._update, this);
    this.model.release();
    super.dispose();
  }

  private _update(): void {
    const warning = this.model.problem ? null : idleWarning(this.model.status);
    const text = warning
      ? idleStatusText(warning)
      : statusBarText(this.model.status, this.model.problem !== null);
    this.toggleClass('jp-mod-warning', warning !== null);
    setText(this._text, text);
    const tip = tooltip(this.model);
    setAttr(this.node, 'title', tip);
    setAttr(this.node, 'aria-label', `${text}. Open the GPU panel.`);
  }

  private readonly _text: HTMLElement;
}
