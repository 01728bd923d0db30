// Between the fuzz engine (main thread) and its worker.

export const SLOT_EXECS = 0;
export const SLOT_BUSY = 1;
export const SLOT_LEN = 2;
/** The input being run is copied here, so a hung worker's input can be saved. */
export const SAB_INPUT = 16;
export const SAB_MAX_INPUT = 1 << 16;

export interface WorkerData {
  target: string;
  root: string;
  seed: number;
  /** Date.now() at which to stop. */
  deadline: number;
  corpus: Uint8Array[];
  sab: SharedArrayBuffer;
  /** Signatures already saved: not reported again after a restart. */
  knownCrashes: string[];
  minimise?: boolean;
  minimiseMs?: number;
}

export type ToMain =
  | { kind: 'new'; input: Uint8Array }
  | { kind: 'crash'; crash: string; signature: string; message: string; input: Uint8Array }
  | { kind: 'stats'; execs: number; covered: number; total: number; corpus: number }
  | {
      kind: 'done';
      execs: number;
      covered: number;
      total: number;
      corpus: number;
      perFile: Record<string, { covered: number; total: number }>;
    }
  | { kind: 'fatal'; message: string };
