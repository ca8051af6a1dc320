// No kernel: the Kubernetes manifests validate against the Kubernetes schema
// with unknown fields rejected; a misspelt field or a wrong type fails; the
// DaemonSet keeps its minimal, commented security context; the podman
// seccomp profile is the one make-seccomp.js derives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { readManifests, validateManifest, podForPodman, KUBE_DIR, YAML } from '../../kube';
import { ROOT, skipIf } from '../../helpers';

const manifests = readManifests();
const daemonSet = () => structuredClone(manifests.find((m) => m.doc.kind === 'DaemonSet')!.doc);

test('deploy/kubernetes: a Namespace, a DaemonSet and a Service, each valid with unknown fields rejected', () => {
  assert.deepEqual(manifests.map((m) => m.doc.kind).sort(), ['DaemonSet', 'Namespace', 'Service']);
  for (const m of manifests) assert.deepEqual(validateManifest(m.doc), [], m.file);
  // the Pod that the container test plays through podman is valid too
  assert.deepEqual(validateManifest(podForPodman(daemonSet(), 'seccomp.json')), []);
});

test('a misspelt field, a wrong type or a missing required field fails validation', () => {
  const misspelt = daemonSet();
  const c = misspelt.spec.template.spec.containers[0];
  c.securityContext.capabilites = c.securityContext.capabilities;
  delete c.securityContext.capabilities;
  assert.deepEqual(validateManifest(misspelt), ['/spec/template/spec/containers/0/securityContext/capabilites: unknown field "capabilites"']);

  const top = daemonSet();
  top.spec.templates = top.spec.template;
  assert.match(validateManifest(top).join('\n'), /\/spec\/templates: unknown field/);

  const wrongType = daemonSet();
  wrongType.spec.template.spec.containers[0].ports[0].containerPort = 'nine';
  assert.match(validateManifest(wrongType).join('\n'), /containerPort: must be integer/);

  const noImage = daemonSet();
  delete noImage.spec.template.spec.containers[0].name;
  assert.match(validateManifest(noImage).join('\n'), /must have required property 'name'/);

  // maps take any key: a label is not an unknown field
  const labelled = daemonSet();
  labelled.metadata.labels['example.com/team'] = 'sre';
  assert.deepEqual(validateManifest(labelled), []);
});

test('the DaemonSet: four capabilities, each with a comment saying why; host network and PID; limits; the mesh over the headless Service', () => {
  const ds = daemonSet();
  const spec = ds.spec.template.spec;
  assert.equal(spec.hostNetwork, true);
  assert.equal(spec.hostPID, true);
  const [c] = spec.containers;
  assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'], add: ['BPF', 'PERFMON', 'SYSLOG', 'NET_RAW'] });
  assert.equal(c.securityContext.privileged, false);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
  // the mesh finds its peers through the headless Service in this namespace, and names itself by its node
  const svc = readManifests().find((m) => m.doc.kind === 'Service')!.doc;
  assert.equal(svc.spec.clusterIP, 'None', 'the Service is headless: one A record per node');
  assert.deepEqual(c.args, ['serve', '--listen', '0.0.0.0:9477', '--mesh', '--peers', `dns:${svc.metadata.name}.${svc.metadata.namespace}.svc.cluster.local`]);
  assert.deepEqual(c.env, [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }]);
  assert.deepEqual(svc.spec.selector, ds.spec.selector.matchLabels);
  assert.ok(spec.volumes.some((v: any) => v.hostPath?.path === '/sys/kernel/btf'));

  // every added capability carries a comment (the YAML's own, above the item)
  const doc = YAML.parseDocument(fs.readFileSync(path.join(KUBE_DIR, 'daemonset.yaml'), 'utf8'));
  const add = doc.getIn(['spec', 'template', 'spec', 'containers', 0, 'securityContext', 'capabilities', 'add'], true) as any;
  // (the parser gives the first item's comment to the list)
  add.items.forEach((item: any, i: number) => {
    const comment = (i === 0 ? add.commentBefore : item.commentBefore) ?? '';
    assert.ok(comment.trim().length > 20, `capability ${item.value} has a comment`);
  });
  // and the SYS_ADMIN fallback is documented
  assert.match(fs.readFileSync(path.join(KUBE_DIR, 'daemonset.yaml'), 'utf8'), /SYS_ADMIN/);
});

test('deploy/podman/seccomp.json is the default profile with bpf and perf_event_open under CAP_BPF and CAP_PERFMON', (t) => {
  const shipped = JSON.parse(fs.readFileSync(path.join(ROOT, 'deploy', 'podman', 'seccomp.json'), 'utf8'));
  const rules = (call: string) => shipped.syscalls.filter((s: any) => s.names.includes(call));
  assert.deepEqual(
    rules('bpf').map((r: any) => [r.action, r.includes.caps ?? [], r.excludes.caps ?? []]),
    [
      ['SCMP_ACT_ALLOW', ['CAP_BPF'], []],
      ['SCMP_ACT_ALLOW', ['CAP_SYS_ADMIN'], ['CAP_BPF']],
      ['SCMP_ACT_ERRNO', [], ['CAP_BPF', 'CAP_SYS_ADMIN']],
    ],
  );
  assert.equal(rules('perf_event_open')[0].includes.caps[0], 'CAP_PERFMON');
  const source = '/usr/share/containers/seccomp.json';
  if (!fs.existsSync(source)) {
    skipIf(t, `derivation check: ${source} is missing (Debian package golang-github-containers-common, with podman)`);
    return;
  }
  const r = spawnSync(process.execPath, [path.join(ROOT, 'deploy', 'podman', 'make-seccomp.js'), source], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), shipped, "seccomp.json is what make-seccomp.js derives from this host's default");
});
