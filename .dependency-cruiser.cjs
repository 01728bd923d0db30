// Xenode's layer rules, checked by `npm run lint` (docs/architecture.md explains
// them). Paths are relative to the directory depcruise runs in: the repository,
// or a test's scratch tree (test/unit/layers.test.ts).
//
//   core      src/{config,engine,store,toolstack,api,cli}/ and src/*.ts
//   features  src/features/<name>/   everything one feature adds
//   switch    src/net/               the virtual switch, a program of its own
//   backends  src/backends/vhost-blk/ the disk backend (vhost-user-blk), a program of its own
//
// The core never imports a feature, except the two lists of features
// (src/toolstack/plugins.ts for the daemon, src/cli/feature-commands.ts for the
// CLI). A feature imports the core and never another feature: what two features
// share is a contract type in the core (e.g. SponsorFileGate, DiskChainSource).
// Only src/engine speaks QMP (scripts/check-engine-boundary.mjs also keeps QEMU
// option and QMP command strings inside it).

/** The entry points that hold the one list of features. */
const FEATURE_LISTS = '^src/(toolstack/plugins|cli/feature-commands)[.]ts$';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import circles in src/, type-only imports included: a circle hides which module owns a type.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'core-not-to-feature',
      comment:
        'The core never imports a feature; only the feature lists (plugins.ts, feature-commands.ts) name them. ' +
        'Put what the core needs into a contract it owns (src/toolstack/lifecycle-hooks.ts, plugin.ts, ' +
        'src/api/context.ts, src/cli/command-spec.ts).',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/features/', FEATURE_LISTS] },
      to: { path: '^src/features/' },
    },
    {
      name: 'feature-not-to-feature',
      comment:
        "A feature never imports another feature's modules: share through a contract type in the core, " +
        'and wire the two together in the feature list (src/toolstack/plugins.ts).',
      severity: 'error',
      from: { path: '^src/features/([^/]+)/' },
      to: { path: '^src/features/', pathNot: '^src/features/$1/' },
    },
    {
      name: 'only-engine-speaks-qmp',
      comment:
        'Only src/engine talks to QEMU over QMP: outside it, ask a QemuMachine method or an engine helper ' +
        '(e.g. src/engine/disk-hotplug.ts) in domain terms.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/engine/' },
      to: { path: '^src/engine/(qmp|fd-passing)[.]ts$' },
    },
    {
      name: 'switch-only-from-network',
      comment: 'The virtual switch (src/net) is a program of its own; only the network feature is its client.',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/(net|features/network)/'] },
      to: { path: '^src/net/' },
    },
    {
      name: 'blk-backend-only-from-disks',
      comment:
        "The disk backend (src/backends/vhost-blk) is a program of its own; only the disks feature starts it, " +
        'and nothing else imports it.',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/(backends/vhost-blk|features/disks)/'] },
      to: { path: '^src/backends/vhost-blk/' },
    },
    {
      name: 'blk-backend-stands-alone',
      comment: 'The disk backend imports nothing of Xenode outside its folder: it serves a guest, it runs no domain.',
      severity: 'error',
      from: { path: '^src/backends/vhost-blk/' },
      to: { path: '^src/', pathNot: '^src/backends/vhost-blk/' },
    },
    {
      name: 'config-is-the-bottom',
      comment: 'Config parsing is plain data in, typed config out: it knows nothing of QEMU, the store or the daemon.',
      severity: 'error',
      from: { path: '^src/config/' },
      to: { path: '^src/(engine|store|toolstack|api|cli|net|features)/' },
    },
    {
      name: 'engine-below-toolstack',
      comment: 'The engine runs QEMU for a typed config; the toolstack, API and CLI use it, never the reverse.',
      severity: 'error',
      from: { path: '^src/engine/' },
      to: { path: '^src/(store|toolstack|api|cli|net|features)/' },
    },
    {
      name: 'store-stands-alone',
      comment: 'The control store is a library of its own (tree, watches, transactions, permissions).',
      severity: 'error',
      from: { path: '^src/store/' },
      to: { path: '^src/(config|engine|toolstack|api|cli|net|features)/' },
    },
    {
      name: 'daemon-not-to-cli',
      comment: 'The daemon side (toolstack, API) never imports the CLI, which is a client of the API.',
      severity: 'error',
      from: { path: '^src/(toolstack|api)/' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'src-not-to-tests',
      comment: 'Shipped code never imports tests, benchmarks or fuzzers.',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|bench|fuzz)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist)/' },
    // Type-only imports count: a circle through types is still a circle.
    tsPreCompilationDeps: true,
    moduleSystems: ['es6', 'cjs'],
    reporterOptions: { text: { highlightFocused: true } },
  },
};
