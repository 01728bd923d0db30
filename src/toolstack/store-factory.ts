// Opens the control store for the daemon (replaced once the store lands).
import type { StoreFactory } from './daemon.ts';
import { NULL_STORE_SINK } from './store-sink.ts';

export const controlStoreFactory: StoreFactory = {
  open() {
    return { sink: NULL_STORE_SINK, close() {} };
  },
};
