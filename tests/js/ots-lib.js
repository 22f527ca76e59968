'use strict'
// Loads javascript-opentimestamps from $OTS_JS_DIR (set by
// tools/setup-clients.sh), falling back to tests/js/node_modules.
const path = require('node:path')

const paths = []
if (process.env.OTS_JS_DIR) paths.push(process.env.OTS_JS_DIR)
paths.push(__dirname)

let pkgDir
try {
  pkgDir = path.dirname(require.resolve('javascript-opentimestamps/package.json', { paths }))
} catch (err) {
  console.error('javascript-opentimestamps not found in ' + paths.join(', ') +
    ': run `eval "$(tools/setup-clients.sh)"` first')
  process.exit(2)
}
// Its package.json names a "main" that does not exist (node would fall back
// to index.js with a DEP0128 warning on every run), so load index.js itself.
module.exports = require(path.join(pkgDir, 'index.js'))
module.exports.resolvedFrom = pkgDir
