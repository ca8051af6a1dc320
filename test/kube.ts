// The Kubernetes manifests in deploy/kubernetes, read and checked against the
// Kubernetes schema (kubernetes-models), plus a strict pass the schema alone
// does not make: a field the schema does not know is an error, as
// `kubectl apply --validate=strict` would say. And the DaemonSet's pod
// template turned into a Pod that `podman kube play` (4.3) can run.
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { ROOT } from './helpers';

export const KUBE_DIR = path.join(ROOT, 'deploy', 'kubernetes');

interface SchemaError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
}
type Validator = ((data: unknown) => boolean) & { errors?: SchemaError[] | null };

/** The compiled validators carry no messages: say what each keyword means. */
function describe(e: SchemaError): string {
  const p = e.params;
  if (e.keyword === 'type') return `must be ${p.type}`;
  if (e.keyword === 'required') return `must have required property '${p.missingProperty}'`;
  if (e.keyword === 'enum') return `must be one of ${JSON.stringify(p.allowedValues)}`;
  return `${e.keyword} ${JSON.stringify(p)}`;
}

/** The compiled schema validator of each kind the manifests use. */
const SCHEMAS: Record<string, string> = {
  'v1/Namespace': 'IoK8sApiCoreV1Namespace',
  'v1/Service': 'IoK8sApiCoreV1Service',
  'v1/Pod': 'IoK8sApiCoreV1Pod',
  'apps/v1/DaemonSet': 'IoK8sApiAppsV1DaemonSet',
};

export interface Manifest {
  file: string;
  doc: any;
}

export function readManifests(dir = KUBE_DIR): Manifest[] {
  const out: Manifest[] = [];
  for (const file of fs
    .readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort())
    for (const d of YAML.parseAllDocuments(fs.readFileSync(path.join(dir, file), 'utf8'))) {
      if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
      const doc = d.toJS();
      if (doc) out.push({ file, doc });
    }
  return out;
}

function validatorFor(doc: any): Validator {
  const name = SCHEMAS[`${doc.apiVersion}/${doc.kind}`];
  if (!name) throw new Error(`no schema here for apiVersion ${doc.apiVersion} kind ${doc.kind}`);
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- the schema module is chosen at run time
  return require(path.join(ROOT, 'node_modules', 'kubernetes-models', '_schemas', `${name}.js`)).validate as Validator;
}

/**
 * Every problem with one object, as "path: what": schema errors (types, required
 * fields, enums), then fields the schema does not have. The strict pass runs
 * the compiled schema over a proxy of the object and records which fields it
 * looked at: a field in an object the schema walked that it never read is
 * unknown to it. Free-form objects (which the schema does not walk) and maps
 * (labels, annotations: the schema reads every key) are not flagged.
 */
export function validateManifest(doc: any): string[] {
  const validate = validatorFor(doc);
  const read = new Map<object, Set<string>>();
  const wrap = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (!read.has(v)) read.set(v, new Set());
    const keys = read.get(v)!;
    return new Proxy(v, {
      get(target, key, receiver) {
        if (typeof key === 'string') keys.add(key);
        return wrap(Reflect.get(target, key, receiver));
      },
    });
  };
  const problems: string[] = [];
  if (!validate(wrap(doc))) for (const e of validate.errors ?? []) problems.push(`${e.instancePath || '/'}: ${describe(e)}`);
  const walk = (v: unknown, at: string) => {
    if (v === null || typeof v !== 'object') return;
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${at}/${i}`));
    const keys = read.get(v);
    if (!keys) return;
    for (const [k, x] of Object.entries(v)) {
      if (!keys.has(k)) problems.push(`${at}/${k}: unknown field "${k}"`);
      else walk(x, `${at}/${k}`);
    }
  };
  walk(doc, '');
  return problems;
}

/**
 * The DaemonSet's pod template as a Pod for `podman kube play` (4.3): it
 * refuses kind DaemonSet and port mappings under hostNetwork (the ports go;
 * probes name the port by number), and reads the seccomp profile from the
 * older annotation with --seccomp-profile-root, not from seccompProfile. It
 * cannot fill an env var from spec.nodeName (there is no node): NODE_NAME is
 * given as a value.
 */
export function podForPodman(daemonSet: any, seccompFile: string): any {
  const spec = structuredClone(daemonSet.spec.template.spec);
  for (const c of spec.containers) {
    const port = c.ports?.find((p: any) => p.name === 'metrics')?.containerPort;
    delete c.ports;
    for (const probe of [c.readinessProbe, c.livenessProbe]) if (probe?.httpGet) probe.httpGet.port = port;
    for (const e of c.env ?? [])
      if (e.valueFrom?.fieldRef?.fieldPath === 'spec.nodeName') {
        delete e.valueFrom;
        e.value = 'podman-node';
      }
  }
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: daemonSet.metadata.name,
      labels: daemonSet.spec.template.metadata.labels,
      annotations: { 'seccomp.security.alpha.kubernetes.io/pod': `localhost/${seccompFile}` },
    },
    spec,
  };
}

export { YAML };
