/**
 * One GPU's card in the panel: its metrics with their sparklines, its processes, MIG and
 * the processes of other servers; built once, then updated in place so keyboard focus and
 * screen-reader position survive each poll.
 */
import { h, setAttr, setText, svg } from './dom';
import { formatNumber } from './format';
import { CardView, cardView } from './gpuview';
import { sparklinePath } from './sparkline';
import type { Gpu, GpuHistory } from './types';

const SPARK_WIDTH = 120;
const SPARK_HEIGHT = 24;

let uniqueId = 0;

/** One GPU's card; built once, then updated in place. */
export class GpuCard {
  readonly node: HTMLElement;

  constructor(uuid: string) {
    const titleId = `jp-GpuPanel-card-${++uniqueId}`;
    this._title = h('h3', { class: 'jp-GpuPanel-cardTitle', id: titleId });
    this._metrics = h('div', { class: 'jp-GpuPanel-metrics' });
    this._extras = h('dl', { class: 'jp-GpuPanel-extras' });
    this._mig = h('div', { class: 'jp-GpuPanel-mig' });
    this._processes = h('div', { class: 'jp-GpuPanel-processList' });
    this._foreign = h('p', { class: 'jp-GpuPanel-foreign', 'data-role': 'foreign-processes' });
    this.node = h(
      'article',
      {
        class: 'jp-GpuPanel-card',
        'data-gpu-uuid': uuid,
        tabindex: '0',
        'aria-labelledby': titleId
      },
      this._title,
      this._metrics,
      this._extras,
      this._mig,
      h(
        'section',
        { class: 'jp-GpuPanel-processes', 'aria-label': 'Processes' },
        h('h4', {}, 'Processes'),
        this._processes,
        this._foreign
      )
    );
  }

  update(gpu: Gpu, history: GpuHistory): void {
    const view = cardView(gpu);
    setText(this._title, view.title);
    setAttr(this.node, 'data-gpu-index', String(gpu.index));
    this._updateMetrics(view, history);
    this._updateList(this._extras, 'extras', view.extras, () =>
      view.extras.flatMap(extra => [h('dt', {}, extra.label), h('dd', {}, extra.value)])
    );
    this._updateList(this._mig, 'mig', view.mig, () =>
      view.mig.length
        ? [
            h('h4', {}, 'MIG instances'),
            h(
              'ul',
              {},
              ...view.mig.map(instance => h('li', {}, `${instance.name}: ${instance.memory}`))
            )
          ]
        : []
    );
    this._updateList(this._processes, 'processes', view.processes, () => [
      view.processes.length
        ? this._processTable(view)
        : h('p', { class: 'jp-GpuPanel-empty' }, view.processesEmpty)
    ]);
    setText(this._foreign, view.foreign);
  }

  private _updateMetrics(view: CardView, history: GpuHistory): void {
    for (const metric of view.metrics) {
      let row = this._metricRows.get(metric.metric);
      if (!row) {
        const value = h('span', { class: 'jp-GpuPanel-metricValue' });
        const path = svg('path', { class: 'jp-GpuPanel-sparkLine' });
        const chart = svg('svg', {
          class: 'jp-GpuPanel-spark',
          width: String(SPARK_WIDTH),
          height: String(SPARK_HEIGHT),
          viewBox: `0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`,
          preserveAspectRatio: 'none',
          role: 'img'
        });
        chart.append(path);
        const node = h(
          'div',
          { class: 'jp-GpuPanel-metric', 'data-metric': metric.metric },
          h('span', { class: 'jp-GpuPanel-metricLabel' }, metric.label),
          value,
          chart
        );
        this._metrics.append(node);
        row = { value, path, chart };
        this._metricRows.set(metric.metric, row);
      }
      setText(row.value, metric.value);
      const values = history[metric.metric];
      setAttr(row.path, 'd', sparklinePath(values, SPARK_WIDTH, SPARK_HEIGHT, metric.range));
      const seconds = history.t.length > 1 ? history.t[history.t.length - 1] - history.t[0] : 0;
      setAttr(
        row.chart,
        'aria-label',
        `${metric.label} history, ${values.length} samples over ${formatNumber(seconds)} s`
      );
      setAttr(row.chart, 'data-points', String(values.length));
    }
  }

  private _processTable(view: CardView): HTMLElement {
    return h(
      'table',
      { class: 'jp-GpuPanel-processTable' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col' }, 'PID'),
          h('th', { scope: 'col' }, 'Command'),
          h('th', { scope: 'col' }, 'Memory')
        )
      ),
      h(
        'tbody',
        {},
        ...view.processes.map(process =>
          h(
            'tr',
            {},
            h('td', {}, process.pid),
            h('td', { class: 'jp-GpuPanel-command', title: process.command }, process.command),
            h('td', {}, process.memory)
          )
        )
      )
    );
  }

  /** Rebuild a small sub-list only when its content changed. */
  private _updateList(node: HTMLElement, key: string, data: unknown, build: () => Node[]): void {
    const signature = JSON.stringify(data);
    if (this._signatures.get(key) === signature) {
      return;
    }
    this._signatures.set(key, signature);
    node.replaceChildren(...build());
  }

  private readonly _title: HTMLElement;
  private readonly _metrics: HTMLElement;
  private readonly _extras: HTMLElement;
  private readonly _mig: HTMLElement;
  private readonly _processes: HTMLElement;
  private readonly _foreign: HTMLElement;
  private readonly _metricRows = new Map<
    string,
    { value: HTMLElement; path: SVGElement; chart: SVGElement }
  >();
  private readonly _signatures = new Map<string, string>();
}
