#!/usr/bin/env node
'use strict'
// Usage: node info.js FILE.ots [--json]
// Prints OpenTimestamps.info (or .json with --json) of a detached timestamp
// file using javascript-opentimestamps; exits non-zero if it does not parse.
const fs = require('node:fs')
const OpenTimestamps = require('./ots-lib.js')

const [file, flag] = process.argv.slice(2)
if (!file) {
  console.error('usage: node info.js FILE.ots [--json]')
  process.exit(2)
}
const bytes = fs.readFileSync(file)
if (flag === '--json') {
  const out = OpenTimestamps.json(bytes)
  const parsed = JSON.parse(out)
  if (parsed.error) {
    console.error('info.js: ' + parsed.error)
    process.exit(1)
  }
  console.log(out)
} else {
  let detached
  try {
    detached = OpenTimestamps.DetachedTimestampFile.deserialize(bytes)
  } catch (err) {
    console.error('info.js: cannot parse ' + file + ': ' + err)
    process.exit(1)
  }
  const info = OpenTimestamps.info(detached)
  if (info.startsWith('Error')) {
    console.error('info.js: ' + info)
    process.exit(1)
  }
  console.log(info)
}
