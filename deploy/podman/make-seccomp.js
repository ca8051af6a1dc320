#!/usr/bin/env node
// Derives deploy/podman/seccomp.json from a container runtime's default seccomp
// profile (Debian: /usr/share/containers/seccomp.json). That default allows
// bpf() and perf_event_open() only to containers holding CAP_SYS_ADMIN; this
// one also allows bpf() under CAP_BPF and perf_event_open() under CAP_PERFMON,
// so jitterscope runs with those two (and CAP_SYSLOG) instead of SYS_ADMIN.
// Everything else is the default, unchanged.
//   node deploy/podman/make-seccomp.js [DEFAULT.json] > deploy/podman/seccomp.json
'use strict';
const fs = require('fs');

const source = process.argv[2] || '/usr/share/containers/seccomp.json';
const profile = JSON.parse(fs.readFileSync(source, 'utf8'));
const GRANTS = { bpf: 'CAP_BPF', perf_event_open: 'CAP_PERFMON' };
const names = Object.keys(GRANTS);

let touched = 0;
const syscalls = [];
for (const rule of profile.syscalls) {
  const sysAdmin = (list) => (list && list.caps ? list.caps : []).includes('CAP_SYS_ADMIN');
  const gated = sysAdmin(rule.includes) || sysAdmin(rule.excludes);
  const ours = rule.names.filter((n) => names.includes(n));
  if (!gated || ours.length === 0) {
    syscalls.push(rule);
    continue;
  }
  touched++;
  const rest = rule.names.filter((n) => !names.includes(n));
  if (rest.length) syscalls.push({ ...rule, names: rest });
}
if (touched === 0) {
  process.stderr.write(`make-seccomp: ${source} has no CAP_SYS_ADMIN rule for ${names.join(' or ')}; nothing to derive\n`);
  process.exit(2);
}
// runtimes read includes.caps as "holds all of these" and excludes.caps as
// "holds none of these": one rule per case, no two rules for one call at once
for (const [call, cap] of Object.entries(GRANTS)) {
  syscalls.push({ names: [call], action: 'SCMP_ACT_ALLOW', args: [], comment: `jitterscope: ${call} under ${cap}`, includes: { caps: [cap] }, excludes: {} });
  syscalls.push({ names: [call], action: 'SCMP_ACT_ALLOW', args: [], comment: `${call} under CAP_SYS_ADMIN, as in the default`, includes: { caps: ['CAP_SYS_ADMIN'] }, excludes: { caps: [cap] } });
  syscalls.push({ names: [call], action: 'SCMP_ACT_ERRNO', args: [], comment: `${call} without ${cap} or CAP_SYS_ADMIN: EPERM, as in the default`, includes: {}, excludes: { caps: [cap, 'CAP_SYS_ADMIN'] }, errnoRet: 1, errno: 'EPERM' });
}
process.stdout.write(JSON.stringify({ ...profile, syscalls }, null, 2) + '\n');
