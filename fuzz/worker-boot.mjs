// Worker entry: Node does not pass --import hooks to a worker's own entry file,
// so register tsx here and load the TypeScript loop.
import { register } from 'tsx/esm/api';

register();
await import('./worker.ts');
