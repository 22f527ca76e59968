#!/usr/bin/env node
'use strict'
// Usage: node stamp.js CALENDAR_URL FILE
//
// Stamps sha256(FILE) with javascript-opentimestamps against CALENDAR_URL
// only (m = 1), writes FILE.ots and prints OpenTimestamps.info of it on
// stdout. Exits non-zero unless the calendar answered with a timestamp
// carrying a PendingAttestation for CALENDAR_URL.
const fs = require('node:fs')
const OpenTimestamps = require('./ots-lib.js')

function die (msg) {
  console.error('stamp.js: ' + msg)
  process.exit(1)
}

async function main () {
  const [url, file] = process.argv.slice(2)
  if (!url || !file) {
    console.error('usage: node stamp.js CALENDAR_URL FILE')
    process.exit(2)
  }
  const data = fs.readFileSync(file)
  const detached = OpenTimestamps.DetachedTimestampFile.fromBytes(
    new OpenTimestamps.Ops.OpSHA256(), data)

  // The library logs "Submitting to remote calendar ..." with console.log;
  // keep stdout for the info output only.
  const log = console.log
  console.log = (...args) => console.error(...args)
  try {
    // It soft-fails calendar errors, so success is checked below.
    await OpenTimestamps.stamp(detached, { calendars: [url], m: 1 })
  } finally {
    console.log = log
  }

  const pending = []
  for (const att of detached.timestamp.allAttestations().values()) {
    if (att instanceof OpenTimestamps.Notary.PendingAttestation) pending.push(att.uri)
  }
  if (pending.length === 0) die('calendar ' + url + ' gave no timestamp (request failed or bad response)')
  const want = url.replace(/\/+$/, '')
  if (!pending.some(u => u === want)) {
    console.error('stamp.js: warning: PendingAttestation uri(s) ' + JSON.stringify(pending) +
      ' differ from the calendar url ' + want)
  }

  const bytes = Buffer.from(detached.serializeToBytes())
  fs.writeFileSync(file + '.ots', bytes)

  const info = OpenTimestamps.info(
    OpenTimestamps.DetachedTimestampFile.deserialize(bytes))
  if (info.startsWith('Error')) die(info)
  process.stdout.write(info.endsWith('\n') ? info : info + '\n')
}

main().catch(err => die(err && err.stack ? err.stack : String(err)))
