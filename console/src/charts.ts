/**
 * The dashboard's charts as inline SVG drawn from the request list: bars with their counts written on them and a
 * text summary for screen readers, so no number is only in a shape. No canvas, no library: three bar charts.
 */
import { svg, html, type TemplateResult } from 'lit';
import type { ErasureRequestView } from './api.ts';

export interface Bar {
  readonly label: string;
  readonly count: number;
}

const DAY = 86_400_000;

/** Open (not verified, not failed) requests by days since filing. */
export function openByAge(requests: readonly ErasureRequestView[], now: Date): Bar[] {
  const buckets: { label: string; upTo: number }[] = [
    { label: '< 7 days', upTo: 7 },
    { label: '7-13 days', upTo: 14 },
    { label: '14-27 days', upTo: 28 },
    { label: '28+ days', upTo: Infinity },
  ];
  const open = requests.filter((r) => r.status === 'received' || r.status === 'running');
  return buckets.map((bucket, i) => {
    const from = i === 0 ? 0 : buckets[i - 1]!.upTo;
    return { label: bucket.label, count: open.filter((r) => { const age = (now.getTime() - Date.parse(r.createdAt)) / DAY; return age >= from && age < bucket.upTo; }).length };
  });
}

/** Verified requests by time from filing to verified (the last update of a verified request is its verification). */
export function filingToVerified(requests: readonly ErasureRequestView[]): Bar[] {
  const buckets: { label: string; upToHours: number }[] = [
    { label: '< 1 hour', upToHours: 1 },
    { label: '1-23 hours', upToHours: 24 },
    { label: '1-6 days', upToHours: 24 * 7 },
    { label: '1-4 weeks', upToHours: 24 * 28 },
    { label: '4+ weeks', upToHours: Infinity },
  ];
  const hours = requests.filter((r) => r.status === 'verified').map((r) => (Date.parse(r.updatedAt) - Date.parse(r.createdAt)) / 3_600_000);
  return buckets.map((bucket, i) => {
    const from = i === 0 ? 0 : buckets[i - 1]!.upToHours;
    return { label: bucket.label, count: hours.filter((h) => h >= from && h < bucket.upToHours).length };
  });
}

/** Requests filed per ISO week (Monday first), the last `weeks` weeks up to now. */
export function perWeek(requests: readonly ErasureRequestView[], now: Date, weeks = 8): Bar[] {
  const monday = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - ((now.getUTCDay() + 6) % 7)));
  return Array.from({ length: weeks }, (_, i) => {
    const start = monday.getTime() - (weeks - 1 - i) * 7 * DAY;
    const end = start + 7 * DAY;
    return { label: new Date(start).toISOString().slice(5, 10), count: requests.filter((r) => { const at = Date.parse(r.createdAt); return at >= start && at < end; }).length };
  });
}

/** A horizontal bar chart; `title` names it for assistive technology, and the summary repeats every count. */
export function barChart(title: string, bars: readonly Bar[]): TemplateResult {
  const rowHeight = 28;
  const labelWidth = 110;
  const width = 420;
  const barSpace = width - labelWidth - 40;
  const max = Math.max(1, ...bars.map((b) => b.count));
  const summary = bars.map((b) => `${b.label}: ${b.count}`).join('; ');
  return html`<figure class="chart">
    <figcaption>${title}</figcaption>
    <svg role="img" aria-label=${`${title}. ${summary}`} viewBox=${`0 0 ${width} ${bars.length * rowHeight + 4}`} width=${width} height=${bars.length * rowHeight + 4}>
      ${bars.map((bar, i) => {
        const y = i * rowHeight + 2;
        const length = Math.round((bar.count / max) * barSpace);
        return svg`<g>
          <text x=${labelWidth - 8} y=${y + 18} text-anchor="end" class="chart-label">${bar.label}</text>
          <rect x=${labelWidth} y=${y + 4} width=${Math.max(length, 1)} height=${rowHeight - 8} class="chart-bar"></rect>
          <text x=${labelWidth + Math.max(length, 1) + 6} y=${y + 18} class="chart-count">${bar.count}</text>
        </g>`;
      })}
    </svg>
  </figure>`;
}
