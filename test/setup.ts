// Preloaded by bunfig.toml. bun ignores a timeout set in bunfig.toml (FIELD-NOTES), and creating an
// embedded database takes about 4 s, over bun's 5 s default once a test does anything else.
import { setDefaultTimeout } from 'bun:test';

setDefaultTimeout(60_000);
