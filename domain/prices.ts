// VM prices for cost estimates and the run's status. List prices change: the table carries the
// date it was read, and runs can pass their own (fineTune's `prices` input) to override it.

export interface PriceTable {
  /** When these prices were read, ISO date. */
  asOf: string;
  source: string;
  currency: string;
  /** Pay-as-you-go price per VM hour, by VM size. */
  perHour: Record<string, number>;
  /** Spot price as a fraction of the pay-as-you-go price (spot prices float; this is typical). */
  spotFactor: number;
}

export const defaultPriceTable: PriceTable = {
  asOf: '2025-06-01',
  source: 'Azure retail prices, East US, Linux pay-as-you-go (approximate; check the Azure pricing calculator)',
  currency: 'USD',
  perHour: {
    Standard_D4s_v3: 0.192,
    Standard_D8s_v5: 0.384,
    Standard_NC4as_T4_v3: 0.526,
    Standard_NC8as_T4_v3: 0.752,
    Standard_NC16as_T4_v3: 1.204,
    Standard_NC64as_T4_v3: 4.352,
    Standard_NC6s_v3: 3.06,
    Standard_NC12s_v3: 6.12,
    Standard_NC24s_v3: 13.46,
    Standard_NV36ads_A10_v5: 3.2,
    Standard_NC24ads_A100_v4: 3.673,
    Standard_NC48ads_A100_v4: 7.346,
    Standard_NC96ads_A100_v4: 14.692,
    Standard_ND96asr_v4: 27.197,
    Standard_ND96amsr_A100_v4: 32.77,
    Standard_NC40ads_H100_v5: 6.98,
    Standard_NC80adis_H100_v5: 13.96,
    Standard_ND96isr_H100_v5: 98.32,
  },
  spotFactor: 0.3,
};

/** Cost of `minutes` of `count` VMs; undefined when the table has no price for the size. */
export function estimateCost(table: PriceTable, vmSize: string, spot: boolean, count: number, minutes: number): number | undefined {
  const hourly = table.perHour[vmSize];
  if (hourly === undefined) return undefined;
  const cost = hourly * (spot ? table.spotFactor : 1) * count * (minutes / 60);
  return Math.round(cost * 100) / 100;
}
