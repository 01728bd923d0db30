// Property tests: the store against small independent models.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { type Caller, ControlStore, isStoreError, type Perm, TOOLSTACK } from '../../src/store/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'xenode-store-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

// ---- a tree model: a flat map of path → value ----------------------------------

type Op =
  | { op: 'write'; path: string; value: string }
  | { op: 'mkdir'; path: string }
  | { op: 'rm'; path: string }
  | { op: 'read'; path: string }
  | { op: 'directory'; path: string };

type Outcome = string | string[] | { error: string } | 'ok';

function parent(path: string): string | undefined {
  if (path === '/') return undefined;
  const i = path.lastIndexOf('/');
  return i === 0 ? '/' : path.slice(0, i);
}

class TreeModel {
  readonly nodes: Map<string, string>;

  constructor(from?: TreeModel) {
    this.nodes = new Map(from ? from.nodes : [['/', '']]);
  }

  apply(op: Op): Outcome {
    const { nodes } = this;
    switch (op.op) {
      case 'write': {
        for (let p = parent(op.path); p !== undefined && !nodes.has(p); p = parent(p)) nodes.set(p, '');
        nodes.set(op.path, op.value);
        return 'ok';
      }
      case 'mkdir':
        if (!nodes.has(op.path)) return this.apply({ op: 'write', path: op.path, value: '' });
        return 'ok';
      case 'rm': {
        if (op.path === '/') return { error: 'EINVAL' };
        if (!nodes.has(op.path)) {
          const p = parent(op.path);
          return p !== undefined && nodes.has(p) ? 'ok' : { error: 'ENOENT' };
        }
        for (const k of [...nodes.keys()]) if (k === op.path || k.startsWith(`${op.path}/`)) nodes.delete(k);
        return 'ok';
      }
      case 'read':
        return nodes.get(op.path) ?? { error: 'ENOENT' };
      case 'directory': {
        if (!nodes.has(op.path)) return { error: 'ENOENT' };
        const names = [...nodes.keys()]
          .filter((k) => parent(k) === op.path)
          .map((k) => k.slice(k.lastIndexOf('/') + 1));
        return names.sort();
      }
    }
  }

  dump(): Record<string, string> {
    return Object.fromEntries([...this.nodes].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

function applyToStore(s: ControlStore, op: Op, txid = 0, caller: Caller = TOOLSTACK): Outcome {
  try {
    switch (op.op) {
      case 'write':
        s.write(caller, op.path, op.value, txid);
        return 'ok';
      case 'mkdir':
        s.mkdir(caller, op.path, txid);
        return 'ok';
      case 'rm':
        s.rm(caller, op.path, txid);
        return 'ok';
      case 'read':
        return s.read(caller, op.path, txid);
      case 'directory':
        return s.directory(caller, op.path, txid);
    }
  } catch (e) {
    if (isStoreError(e)) return { error: e.errno };
    throw e;
  }
}

function dumpStore(s: ControlStore): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of s.exportSubtree('/').nodes) out[n.path === '' ? '/' : `/${n.path}`] = n.value;
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

// A small alphabet so operations collide often.
const pathArb = fc.array(fc.constantFrom('a', 'b', 'c'), { maxLength: 3 }).map((parts) => `/${parts.join('/')}`);
const valueArb = fc.string({ unit: 'grapheme', maxLength: 6 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('write' as const), path: pathArb, value: valueArb }),
  fc.record({ op: fc.constant('mkdir' as const), path: pathArb }),
  fc.record({ op: fc.constant('rm' as const), path: pathArb }),
  fc.record({ op: fc.constant('read' as const), path: pathArb }),
  fc.record({ op: fc.constant('directory' as const), path: pathArb }),
);

describe('store fuzz', () => {
  it('random operations give the same results as a map model, and survive a reopen', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), (ops) => {
        const file = join(dir, `a${files++}.db`);
        const s = new ControlStore({ dbPath: file });
        const model = new TreeModel();
        try {
          for (const op of ops) assert.deepEqual(applyToStore(s, op), model.apply(op), JSON.stringify(op));
          assert.deepEqual(dumpStore(s), model.dump());
        } finally {
          s.close();
        }
        const reopened = new ControlStore({ dbPath: file });
        try {
          assert.deepEqual(dumpStore(reopened), model.dump());
        } finally {
          reopened.close();
        }
      }),
      { numRuns: 150 },
    );
  });

  it('a transaction sees its own writes, outsiders see none until commit, abort discards', () => {
    type Step = { inTx: boolean; op: Op };
    const stepArb = fc.record({ inTx: fc.boolean(), op: opArb });
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 8 }),
        fc.array(stepArb, { maxLength: 25 }),
        fc.boolean(),
        (init, steps: Step[], commit) => {
          const s = new ControlStore();
          const committed = new TreeModel();
          for (const op of init) {
            applyToStore(s, op);
            committed.apply(op);
          }
          const txModel = new TreeModel(committed);
          const txid = s.transactionStart(TOOLSTACK);
          for (const { inTx, op } of steps) {
            // Outsiders only read here, so the transaction cannot conflict.
            if (inTx) assert.deepEqual(applyToStore(s, op, txid), txModel.apply(op));
            else if (op.op === 'read' || op.op === 'directory')
              assert.deepEqual(applyToStore(s, op), committed.apply(op));
          }
          assert.deepEqual(dumpStore(s), committed.dump());
          s.transactionEnd(TOOLSTACK, txid, commit);
          assert.deepEqual(dumpStore(s), (commit ? txModel : committed).dump());
          s.close();
        },
      ),
      { numRuns: 200 },
    );
  });

  it('conflict detection is sound: a commit that succeeds behaves as if run after the other', () => {
    const outcomes = { secondCommitted: 0, secondConflicted: 0 };
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 8 }),
        fc.array(opArb, { minLength: 1, maxLength: 6 }),
        fc.array(opArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
        (init, ops1, ops2, interleave) => {
          const s = new ControlStore();
          const base = new TreeModel();
          for (const op of init) {
            applyToStore(s, op);
            base.apply(op);
          }
          const t1 = s.transactionStart(TOOLSTACK);
          const t2 = s.transactionStart(TOOLSTACK);
          const got1: Outcome[] = [];
          const got2: Outcome[] = [];
          let i1 = 0;
          let i2 = 0;
          for (const pick of interleave) {
            const op1 = ops1[i1];
            const op2 = ops2[i2];
            if ((pick && op1) || !op2) {
              if (op1) got1.push(applyToStore(s, op1, t1));
              i1++;
            } else {
              got2.push(applyToStore(s, op2, t2));
              i2++;
            }
          }
          for (; i1 < ops1.length; i1++) got1.push(applyToStore(s, ops1[i1] as Op, t1));
          for (; i2 < ops2.length; i2++) got2.push(applyToStore(s, ops2[i2] as Op, t2));

          s.transactionEnd(TOOLSTACK, t1, true); // nothing committed meanwhile: must succeed
          const after1 = new TreeModel(base);
          assert.deepEqual(
            got1,
            ops1.map((op) => after1.apply(op)),
          );
          let second = true;
          try {
            s.transactionEnd(TOOLSTACK, t2, true);
          } catch (e) {
            assert.ok(isStoreError(e, 'EAGAIN'), String(e));
            second = false;
          }
          if (second) {
            outcomes.secondCommitted++;
            const after2 = new TreeModel(after1);
            assert.deepEqual(
              got2,
              ops2.map((op) => after2.apply(op)),
              'T2 saw what a serial run would see',
            );
            assert.deepEqual(dumpStore(s), after2.dump());
          } else {
            outcomes.secondConflicted++;
            assert.deepEqual(dumpStore(s), after1.dump());
          }
          s.close();
        },
      ),
      { numRuns: 300 },
    );
    assert.ok(outcomes.secondCommitted > 10, `too few non-conflicting runs: ${JSON.stringify(outcomes)}`);
    assert.ok(outcomes.secondConflicted > 10, `too few conflicting runs: ${JSON.stringify(outcomes)}`);
  });

  it('access decisions follow the xenstore rule for any perms and caller', () => {
    const domids = [0, 3, 4, 5];
    const permArb: fc.Arbitrary<Perm> = fc.record({
      id: fc.constantFrom(...domids),
      perm: fc.constantFrom('n' as const, 'r' as const, 'w' as const, 'b' as const),
    });
    const callerArb: fc.Arbitrary<Caller> = fc.record({ domid: fc.constantFrom(...domids), privileged: fc.boolean() });
    // Written independently of src/store/perms.ts, straight from the reference text.
    const expected = (c: Caller, perms: Perm[]): { read: boolean; write: boolean } => {
      if (c.privileged || perms[0]?.id === c.domid) return { read: true, write: true };
      const entry = perms.slice(1).find((p) => p.id === c.domid) ?? perms[0];
      const letter = entry?.perm ?? 'n';
      return { read: letter === 'r' || letter === 'b', write: letter === 'w' || letter === 'b' };
    };
    const s = new ControlStore();
    fc.assert(
      fc.property(fc.array(permArb, { minLength: 1, maxLength: 5 }), callerArb, (perms, caller) => {
        s.write(TOOLSTACK, '/p/node', 'v');
        s.setPerms(TOOLSTACK, '/p/node', perms);
        const want = expected(caller, perms);
        const read = applyToStore(s, { op: 'read', path: '/p/node' }, 0, caller);
        assert.deepEqual(read, want.read ? 'v' : { error: 'EACCES' });
        const ls = applyToStore(s, { op: 'directory', path: '/p/node' }, 0, caller);
        assert.deepEqual(ls, want.read ? [] : { error: 'EACCES' });
        const write = applyToStore(s, { op: 'write', path: '/p/node', value: 'w' }, 0, caller);
        assert.deepEqual(write, want.write ? 'ok' : { error: 'EACCES' });
        s.rm(TOOLSTACK, '/p');
      }),
      { numRuns: 300 },
    );
    s.close();
  });

  it('the snapshot parser rejects arbitrary input with EINVAL and nothing else', () => {
    const s = new ControlStore();
    const nodeArb = fc.record({
      path: fc.oneof(fc.constant(''), fc.constantFrom('a', 'a/b', 'b', 'a//b', '/a'), fc.string({ maxLength: 4 })),
      value: fc.oneof(fc.string({ maxLength: 4 }), fc.integer()),
      perms: fc.oneof(
        fc.constant(['n0']),
        fc.array(fc.oneof(fc.string({ maxLength: 3 }), fc.anything()), { maxLength: 2 }),
      ),
    });
    const snapArb = fc.oneof(
      fc.anything(),
      fc.string(),
      fc.record({
        format: fc.constantFrom('xenode-store-snapshot', 'other'),
        version: fc.constantFrom(1, 2),
        nodes: fc.oneof(
          fc.array(nodeArb, { maxLength: 4 }),
          // Mostly-valid shapes, so the accepting path is exercised too.
          fc
            .array(nodeArb, { maxLength: 2 })
            .map((rest) => [
              { path: '', value: 'root', perms: ['n0', 'r3'] },
              { path: 'a', value: '', perms: ['b3'] },
              ...rest,
            ]),
        ),
      }),
    );
    let accepted = 0;
    fc.assert(
      fc.property(snapArb, (snap) => {
        try {
          s.importSubtree('/imp', (typeof snap === 'string' ? snap : (JSON.stringify(snap) ?? 'undefined')) as string);
          accepted++;
          assert.equal(typeof s.read(TOOLSTACK, '/imp'), 'string');
        } catch (e) {
          assert.ok(isStoreError(e, 'EINVAL'), String(e));
        }
      }),
      { numRuns: 500 },
    );
    assert.ok(accepted > 0, 'some generated snapshots are valid');
    s.close();
  });
});
