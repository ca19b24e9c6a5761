// The source layout's rules, checked by test/structure.test.ts (dependency-cruiser, parsing with swc:
// TypeScript 7 has no compiler API for it yet). Stages, bottom to top:
//   leaves (config, errors, log, event, fallbacks) < store < maintain < protect < receive, read < observe
//   < app < service < main
// Each may import what is below it, never what is above; receive and read never import each other;
// only service.ts builds the app.
const above = (...names) => `^src/(${names.join('|')})(/|\\.ts$)`;
const WIRING = ['app', 'service', 'main', 'openapi', 'processes'];

module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', comment: 'An import cycle: split what both sides need into a file below them.', from: {}, to: { circular: true } },
    { name: 'app-built-by-service-only', severity: 'error', from: { pathNot: '^src/service\\.ts$' }, to: { path: '^src/app\\.ts$' } },
    { name: 'leaves-import-leaves', severity: 'error', from: { path: '^src/(config|errors|log|event|fallbacks)\\.ts$' }, to: { path: above('store', 'maintain', 'protect', 'receive', 'read', 'observe', 'console', 'state', ...WIRING) } },
    { name: 'store-is-the-bottom-stage', severity: 'error', from: { path: '^(src/store/|workers/)' }, to: { path: above('maintain', 'protect', 'receive', 'read', 'observe', 'console', 'state', ...WIRING) } },
    { name: 'maintain-uses-store-only', severity: 'error', from: { path: '^src/maintain/' }, to: { path: above('protect', 'receive', 'read', 'observe', 'console', 'state', ...WIRING) } },
    { name: 'protect-uses-leaves-only', severity: 'error', from: { path: '^src/protect/' }, to: { path: above('store', 'maintain', 'receive', 'read', 'observe', 'console', 'state', ...WIRING) } },
    { name: 'receive-never-reads', severity: 'error', from: { path: '^src/receive/' }, to: { path: above('maintain', 'read', 'observe', 'console', ...WIRING) } },
    { name: 'read-never-receives', severity: 'error', from: { path: '^src/read/' }, to: { path: above('maintain', 'receive', 'observe', 'console', ...WIRING) } },
    { name: 'observe-is-below-wiring', severity: 'error', from: { path: '^src/observe/' }, to: { path: above('receive', 'console', ...WIRING) } },
  ],
  options: {
    parser: 'swc',
    tsPreCompilationDeps: true, // type-only imports count: a cycle of types is still a cycle of files
    doNotFollow: { path: 'node_modules' },
    exclude: { path: 'node_modules' },
  },
};
