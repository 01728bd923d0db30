// One resource chart (uPlot) over the sampler's history, appended live. A
// chart whose counters are absent for this domain says so instead of drawing
// an empty plot.

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { MetricsSample } from '../types.ts';

const WINDOW_S = 600;

export type SampleKey = Exclude<keyof MetricsSample, 't'>;

export interface SeriesSpec {
  key: SampleKey;
  label: string;
  color: string;
}

interface Props {
  title: string;
  series: SeriesSpec[];
  samples: MetricsSample[];
  fmt: (v: number | null) => string;
  /** Lower bound of the y range's top, so an idle domain's chart is not all noise. */
  minTop: number;
  emptyText: string;
}

function toData(samples: MetricsSample[], series: SeriesSpec[]): uPlot.AlignedData {
  return [samples.map((s) => s.t / 1000), ...series.map((se) => samples.map((s) => s[se.key]))];
}

export function MetricChart({ title, series, samples, fmt, minTop, emptyText }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);
  const hasData = samples.some((s) => series.some((se) => s[se.key] !== null));

  useEffect(() => {
    const el = host.current;
    if (!hasData || !el) return;
    // The grid follows the colour scheme (styles.css --grid).
    const grid = getComputedStyle(document.documentElement).getPropertyValue('--grid').trim() || '#eef1f4';
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: 190,
      cursor: { drag: { x: false, y: false } },
      // The header shows the newest values; uPlot's own legend would repeat them.
      legend: { show: false },
      // Always the sampler's whole 10-minute window, ending at the newest sample: with
      // one sample uPlot would otherwise widen the axis to years.
      scales: {
        x: { time: true, range: (_u, _min, max) => [(max ?? Date.now() / 1000) - WINDOW_S, max ?? Date.now() / 1000] },
        y: { range: (_u, _min, max) => [0, Math.max(minTop, (max ?? 0) * 1.15)] },
      },
      axes: [
        { stroke: '#5c6673', grid: { stroke: grid }, ticks: { stroke: grid } },
        {
          stroke: '#5c6673',
          size: 78,
          grid: { stroke: grid },
          ticks: { stroke: grid },
          values: (_u, splits) => splits.map((v) => fmt(v)),
        },
      ],
      series: [
        { label: 'time' },
        ...series.map((se) => ({
          label: se.label,
          stroke: se.color,
          width: 2,
          fill: `${se.color}22`,
          points: { show: false },
          spanGaps: false,
          value: (_u: uPlot, v: number | null) => fmt(v),
        })),
      ],
    };
    const u = new uPlot(opts, toData(samples, series), el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: 190 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = undefined;
    };
    // Created once data exists; later samples go through setData below.
  }, [hasData]);

  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    u.setData(toData(samples, series));
    host.current?.setAttribute('data-x-span', String(Math.round((u.scales.x.max ?? 0) - (u.scales.x.min ?? 0))));
  }, [samples, series]);

  const last = samples.at(-1);
  return (
    <section class="card chart-card" data-chart={title}>
      <header class="chart-head">
        <h3>{title}</h3>
        <div class="chart-now">
          {series.map((se) => (
            <span key={se.key}>
              <i style={{ background: se.color }} />
              {se.label} <b>{fmt(last ? last[se.key] : null)}</b>
            </span>
          ))}
        </div>
      </header>
      {hasData ? <div class="chart" ref={host} /> : <div class="chart-empty">{emptyText}</div>}
    </section>
  );
}
