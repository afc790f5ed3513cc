#!/usr/bin/env node
// The `sls` command. The TypeScript sources are compiled to dist/ by `npm install` (prepare) and `npm run build`.
import '../dist/cli/sls.js';
