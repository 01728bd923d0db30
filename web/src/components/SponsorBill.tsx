// A sponsor's bill over the Usage page's range (GET /v1/bill): one line per
// priced item, and the total. Without prices (xenode prices) it says so.

import { useEffect, useState } from 'preact/hooks';
import { api } from '../api.ts';

interface BillLine {
  item: string;
  quantity: number;
  unit: string;
  price: string;
  amount: number;
}

interface BillReport {
  currency: string | null;
  sponsors: Array<{ sponsor: string; lines: BillLine[]; total: number }>;
}

export function SponsorBill({ sponsor, since }: { sponsor: string; since: string }) {
  const [bill, setBill] = useState<BillReport | undefined>(undefined);
  useEffect(() => {
    const q = new URLSearchParams();
    if (since) q.set('since', since);
    api<BillReport>('GET', `/v1/bill?${q}`).then(setBill, () => setBill(undefined));
  }, [since]);
  const mine = bill?.sponsors.find((s) => s.sponsor === sponsor);
  if (!bill || !mine) return null;
  const cur = bill.currency ?? '';
  const money = (n: number) => `${n.toFixed(n !== 0 && Math.abs(n) < 0.01 ? 4 : 2)}${cur ? ` ${cur}` : ''}`;
  return (
    <div class="bill" data-bill={sponsor}>
      <h3>Bill</h3>
      {mine.lines.length === 0 ? (
        <p class="muted">No prices are set (the admin sets them with xenode prices), so nothing is charged.</p>
      ) : (
        <table class="dev">
          <thead>
            <tr>
              <th>Item</th>
              <th class="num">Quantity</th>
              <th>Price</th>
              <th class="num">Amount</th>
            </tr>
          </thead>
          <tbody>
            {mine.lines.map((l) => (
              <tr key={l.item}>
                <td>{l.item}</td>
                <td class="num mono">
                  {l.quantity.toFixed(3)} {l.unit}
                </td>
                <td class="mono">{l.price}</td>
                <td class="num mono">{money(l.amount)}</td>
              </tr>
            ))}
            <tr data-bill-total>
              <td colSpan={3}>
                <b>Total</b>
              </td>
              <td class="num mono">
                <b>{money(mine.total)}</b>
              </td>
            </tr>
          </tbody>
        </table>
      )}
    </div>
  );
}
