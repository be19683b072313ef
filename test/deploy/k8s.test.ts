/**
 * deploy/k8s checked as data (no cluster runs here). Each overlay is rendered with
 * `kubectl kustomize` (when kubectl is installed) and its objects are checked against each other
 * and against the code: the ports and probe paths the services really serve, the config the
 * loader really accepts, the metric the fanout-sender HPA scales on.
 */
import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { clientApiService } from '@tessera/client-api-service';
import { buildConfig } from '@tessera/config';
import { fanoutSenderService } from '@tessera/fanout-sender-service';
import { federationIngressService } from '@tessera/federation-ingress-service';
import { HealthController, type ServiceDefinition } from '@tessera/http';
import { createMetrics } from '@tessera/observability';
import { persistenceService } from '@tessera/persistence-service';
import { formatSigningKeyFile, generateSigningKey } from '@tessera/protocol';
import { roomServerService } from '@tessera/room-server-service';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const K8S = join(ROOT, 'deploy/k8s');
const SERVICES: ServiceDefinition[] = [clientApiService, federationIngressService, roomServerService, persistenceService, fanoutSenderService];
const SERVICE_NAMES = SERVICES.map((s) => s.name).sort();

/**
 * Secrets the deployment uses but does not create, each with who provides it (docs/operations.md
 * tells the operator how). Any other Secret a pod references must be in the rendered output.
 */
const EXTERNAL_SECRETS: Record<string, string> = {
  'tessera-db-app': 'CloudNativePG (the Cluster tessera-db)',
  'tessera-signing-key': 'the operator (kubectl create secret generic tessera-signing-key --from-file=signing.key=...)',
  'tessera-registration': 'the operator, optional',
  'tessera-tls': 'cert-manager',
};

const hasKubectl = (() => {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (!hasKubectl) console.warn('WARNING: kubectl not found; the rendered-manifest checks of deploy/k8s are skipped');

type K8sObject = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

/** Renders an overlay. The dev overlay needs a signing key file (never committed): it is rendered from a copy with a fresh one. */
function render(dir: string): K8sObject[] {
  let target = join(K8S, dir);
  if (dir === 'overlays/dev') {
    const copy = mkdtempSync(join(tmpdir(), 'tessera-k8s-'));
    cpSync(K8S, copy, { recursive: true });
    writeFileSync(join(copy, 'overlays/dev/signing.key'), formatSigningKeyFile([generateSigningKey()]));
    target = join(copy, 'overlays/dev');
  }
  const out = execFileSync('kubectl', ['kustomize', target], { encoding: 'utf8' });
  return parseAllDocuments(out).map((d) => d.toJS() as K8sObject).filter(Boolean);
}

const byKind = (objects: K8sObject[], kind: string) => objects.filter((o) => o.kind === kind);
const find = (objects: K8sObject[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/** A container port by name or number. */
function containerPort(container: any, port: string | number): number | undefined {
  const p = (container.ports ?? []).find((x: any) => x.name === port || x.containerPort === port);
  return p?.containerPort;
}

function isPinned(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const tag = /:([^/:@]+)$/.exec(image)?.[1];
  return tag !== undefined && tag !== 'latest' && !/^(main|master|edge|stable|dev)$/.test(tag);
}

/** The HTTP port each service listens on, as the code decides it from the environment. */
function servedPort(service: ServiceDefinition, env: Record<string, string>): number {
  if (service.listener === 'client') return Number(env.CLIENT_PORT ?? 8008);
  if (service.listener === 'federation') return Number(env.FEDERATION_PORT ?? 8448);
  return Number(env.HEALTH_PORT ?? service.defaultHealthPort);
}

const healthBase = `/${Reflect.getMetadata('path', HealthController)}`;
const LIVE_PATH = `${healthBase}/${Reflect.getMetadata('path', HealthController.prototype.live)}`;
const READY_PATH = `${healthBase}/${Reflect.getMetadata('path', HealthController.prototype.ready)}`;

for (const overlay of ['base', 'overlays/dev', 'overlays/prod']) {
  describe.skipIf(!hasKubectl)(`deploy/k8s/${overlay} rendered`, () => {
    const objects = hasKubectl ? render(overlay) : [];
    const deployments = byKind(objects, 'Deployment');
    const tessera = deployments.filter((d) => d.metadata.name !== 'redis');
    const configMaps = byKind(objects, 'ConfigMap');
    const secrets = byKind(objects, 'Secret');

    it('has a Deployment, Service and PodDisruptionBudget for each of the five services', () => {
      expect(tessera.map((d) => d.metadata.name).sort()).toEqual(SERVICE_NAMES);
      const appDirs = readdirSync(join(ROOT, 'apps')).filter((d) => d !== 'homeserver' && existsSync(join(ROOT, 'apps', d, 'src/main.ts')));
      expect(appDirs.sort()).toEqual(SERVICE_NAMES);
      for (const name of SERVICE_NAMES) {
        expect(find(objects, 'Service', name), `Service ${name}`).toBeDefined();
        const pdb = find(objects, 'PodDisruptionBudget', name);
        expect(pdb, `PodDisruptionBudget ${name}`).toBeDefined();
        const deployment = find(objects, 'Deployment', name)!;
        expect(matches(pdb!.spec.selector.matchLabels, deployment.spec.template.metadata.labels)).toBe(true);
        // maxUnavailable, so that a single-replica dev deployment can still be drained.
        expect(pdb!.spec.maxUnavailable).toBeGreaterThanOrEqual(1);
      }
    });

    it('gives every container probes, resources, a pinned image and a non-root security context', () => {
      expect(deployments.length).toBeGreaterThan(0);
      for (const d of deployments) {
        const pod = d.spec.template.spec;
        const where = `Deployment ${d.metadata.name}`;
        expect(pod.securityContext?.runAsNonRoot, where).toBe(true);
        expect(pod.securityContext?.runAsUser, where).toBeGreaterThan(0);
        expect(pod.automountServiceAccountToken, where).toBe(false);
        for (const c of pod.containers) {
          const at = `${where} container ${c.name}`;
          expect(c.livenessProbe, `${at} livenessProbe`).toBeDefined();
          expect(c.readinessProbe, `${at} readinessProbe`).toBeDefined();
          for (const kind of ['requests', 'limits']) {
            expect(c.resources?.[kind]?.cpu, `${at} ${kind}.cpu`).toBeDefined();
            expect(c.resources?.[kind]?.memory, `${at} ${kind}.memory`).toBeDefined();
          }
          expect(bytes(c.resources.requests.memory)).toBeLessThanOrEqual(bytes(c.resources.limits.memory));
          expect(cpu(c.resources.requests.cpu)).toBeLessThanOrEqual(cpu(c.resources.limits.cpu));
          expect(isPinned(c.image), `${at} image ${c.image} is pinned`).toBe(true);
          expect(c.securityContext?.allowPrivilegeEscalation, at).toBe(false);
          expect(c.securityContext?.readOnlyRootFilesystem, at).toBe(true);
          expect(c.securityContext?.capabilities?.drop, at).toContain('ALL');
          for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe].filter(Boolean)) {
            const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
            if (port !== undefined) expect(containerPort(c, port), `${at} probe port ${port}`).toBeDefined();
          }
        }
      }
    });

    it('probes the ports and paths the services serve, and scrapes /metrics there', () => {
      for (const service of SERVICES) {
        const d = find(objects, 'Deployment', service.name)!;
        const c = d.spec.template.spec.containers.find((x: any) => x.name === service.name);
        expect(c, `container ${service.name}`).toBeDefined();
        expect(c.args).toEqual([service.name]);
        const env = containerEnv(c, configMaps);
        const port = servedPort(service, env);
        // The image's user (deploy/Dockerfile), so that files it owns stay readable.
        const imageUser = /^USER (\d+)/m.exec(readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8'))?.[1];
        expect(d.spec.template.spec.securityContext.runAsUser).toBe(Number(imageUser));
        expect(env.BIND_ADDRESS, 'listeners must bind all interfaces in a pod').toBe('0.0.0.0');
        expect(containerPort(c, c.livenessProbe.httpGet.port)).toBe(port);
        expect(containerPort(c, c.readinessProbe.httpGet.port)).toBe(port);
        expect(c.livenessProbe.httpGet.path).toBe(LIVE_PATH);
        expect(c.readinessProbe.httpGet.path).toBe(READY_PATH);
        if (c.startupProbe) expect(containerPort(c, c.startupProbe.httpGet.port)).toBe(port);
        const annotations = d.spec.template.metadata.annotations ?? {};
        expect(annotations['prometheus.io/scrape']).toBe('true');
        expect(Number(annotations['prometheus.io/port'])).toBe(port);
        expect(annotations['prometheus.io/path']).toBe('/metrics');
        const preStop = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
        expect(preStop).toBeLessThan(d.spec.template.spec.terminationGracePeriodSeconds ?? 30);
      }
    });

    it('takes configuration only from the ConfigMaps and Secrets, and the loader accepts it', () => {
      for (const d of tessera) {
        const pod = d.spec.template.spec;
        const c = pod.containers[0];
        const at = `Deployment ${d.metadata.name}`;
        for (const from of c.envFrom ?? []) {
          if (from.configMapRef) expect(find(objects, 'ConfigMap', from.configMapRef.name), `${at} envFrom ${from.configMapRef.name}`).toBeDefined();
          if (from.secretRef) expect(secretKnown(secrets, from.secretRef.name), `${at} envFrom ${from.secretRef.name}`).toBe(true);
        }
        for (const e of c.env ?? []) {
          if (e.valueFrom?.secretKeyRef) expect(secretKnown(secrets, e.valueFrom.secretKeyRef.name), `${at} env ${e.name}`).toBe(true);
          if (e.valueFrom?.configMapKeyRef) expect(find(objects, 'ConfigMap', e.valueFrom.configMapKeyRef.name)).toBeDefined();
          // Literal values are for the runtime only, never for homeserver settings.
          if (e.value !== undefined) expect(e.name, `${at} literal env`).toBe('NODE_OPTIONS');
        }
        const env = containerEnv(c, configMaps);
        expect(c.env.find((e: any) => e.name === 'DATABASE_URL')?.valueFrom?.secretKeyRef, `${at} DATABASE_URL from a Secret`).toBeDefined();

        // The config file and the signing key are mounted, from a ConfigMap and a Secret.
        const volume = (mountPathOf: string) => {
          const mount = c.volumeMounts.find((m: any) => mountPathOf === m.mountPath || mountPathOf.startsWith(`${m.mountPath}/`));
          expect(mount, `${at} a volume mounted over ${mountPathOf}`).toBeDefined();
          return { mount, volume: pod.volumes.find((v: any) => v.name === mount.name) };
        };
        const config = volume(env.CONFIG_FILE!);
        expect(config.volume.configMap, `${at} config file from a ConfigMap`).toBeDefined();
        const configMap = find(objects, 'ConfigMap', config.volume.configMap.name)!;
        const fileName = relative(config.mount.mountPath, env.CONFIG_FILE!);
        expect(configMap?.data?.[fileName], `${at} ConfigMap ${config.volume.configMap.name} holds ${fileName}`).toBeDefined();
        const key = volume(env.SIGNING_KEY_PATH!);
        expect(key.mount.readOnly).toBe(true);
        expect(key.volume.secret, `${at} signing key from a Secret`).toBeDefined();
        expect(secretKnown(secrets, key.volume.secret.secretName)).toBe(true);
        expect(relative(key.mount.mountPath, env.SIGNING_KEY_PATH!)).toBe('signing.key');
        const generated = find(objects, 'Secret', key.volume.secret.secretName);
        if (generated) expect(Object.keys(generated.data ?? {})).toContain('signing.key');

        // What the service would load: the mounted YAML plus this environment. A setting the
        // loader does not know, or a bad value, fails here as it would fail the pod.
        const raw = parse(configMap.data[fileName]) ?? {};
        const loaded = buildConfig(raw, {
          file: env.CONFIG_FILE,
          env: { ...env, DATABASE_URL: 'postgresql://app:secret@tessera-db-rw:5432/app' },
          cwd: '/app',
        });
        expect(loaded.nats.url, `${at} NATS_URL`).toBeDefined();
        expect(loaded.redis.url, `${at} REDIS_URL`).toBeDefined();
        expect(loaded.signingKeyPath).toBe(env.SIGNING_KEY_PATH);
      }
    });

    it('lets Services select their Deployment on the ports the containers serve', () => {
      for (const s of byKind(objects, 'Service')) {
        const targets = deployments.filter((d) => matches(s.spec.selector, d.spec.template.metadata.labels));
        expect(targets.map((d) => d.metadata.name), `Service ${s.metadata.name} selects one Deployment`).toHaveLength(1);
        const [d] = targets;
        expect(matches(d!.spec.selector.matchLabels, d!.spec.template.metadata.labels)).toBe(true);
        for (const p of s.spec.ports) {
          const c = d!.spec.template.spec.containers.find((x: any) => containerPort(x, p.targetPort) !== undefined);
          expect(c, `Service ${s.metadata.name} port ${p.name} -> ${p.targetPort}`).toBeDefined();
          expect(containerPort(c, p.targetPort)).toBe(p.port);
        }
      }
      for (const d of deployments) expect(matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels), d.metadata.name).toBe(true);
    });

    it('routes the Ingress to the client port and the federation port 8448', () => {
      const [ingress] = byKind(objects, 'Ingress');
      expect(ingress).toBeDefined();
      const routes = new Map<string, { service: string; port: number }>();
      for (const rule of ingress!.spec.rules) {
        expect(ingress!.spec.tls.some((t: any) => t.hosts.includes(rule.host)), `TLS for ${rule.host}`).toBe(true);
        for (const p of rule.http.paths) routes.set(p.path, { service: p.backend.service.name, port: p.backend.service.port.number });
      }
      for (const [path, backend] of routes) {
        const svc = find(objects, 'Service', backend.service);
        expect(svc, `Ingress ${path} -> Service ${backend.service}`).toBeDefined();
        expect(svc!.spec.ports.map((p: any) => p.port)).toContain(backend.port);
      }
      const clientEnv = containerEnv(find(objects, 'Deployment', 'client-api')!.spec.template.spec.containers[0], configMaps);
      expect(routes.get('/_matrix/client')).toEqual({ service: 'client-api', port: servedPort(clientApiService, clientEnv) });
      expect(routes.get('/.well-known/matrix')?.service).toBe('client-api');
      expect(routes.get('/_matrix/federation')).toEqual({ service: 'federation-ingress', port: 8448 });
      expect(routes.get('/_matrix/key')).toEqual({ service: 'federation-ingress', port: 8448 });
      expect([...routes.keys()].some((p) => p.startsWith('/_synapse/admin') || p === '/metrics' || p === '/')).toBe(false);
    });

    it('autoscales client-api on CPU and fanout-sender on the federation queue depth metric', async () => {
      const hpas = byKind(objects, 'HorizontalPodAutoscaler');
      expect(hpas.map((h) => h.spec.scaleTargetRef.name).sort()).toEqual(['client-api', 'fanout-sender']);
      for (const h of hpas) {
        const target = find(objects, h.spec.scaleTargetRef.kind, h.spec.scaleTargetRef.name);
        expect(target, `HPA ${h.metadata.name} target`).toBeDefined();
        expect(target!.kind).toBe('Deployment');
        // The HPA owns the count: a replicas field would fight it on every apply.
        expect(target!.spec.replicas, `Deployment ${target!.metadata.name} has no replicas`).toBeUndefined();
        expect(h.spec.minReplicas).toBeGreaterThanOrEqual(1);
        expect(h.spec.maxReplicas).toBeGreaterThanOrEqual(h.spec.minReplicas);
      }
      const client = hpas.find((h) => h.spec.scaleTargetRef.name === 'client-api')!;
      expect(client.spec.metrics).toContainEqual(expect.objectContaining({ type: 'Resource', resource: expect.objectContaining({ name: 'cpu' }) }));
      const fanout = hpas.find((h) => h.spec.scaleTargetRef.name === 'fanout-sender')!;
      const metric = fanout.spec.metrics.find((m: any) => m.type === 'Pods' || m.type === 'External');
      const metricName = (metric.pods ?? metric.external).metric.name;
      // The metric the fanout-sender really exports.
      const exported = (await createMetrics({ service: 'fanout-sender', processMetrics: false }).registry.getMetricsAsJSON()).map((m) => m.name);
      expect(exported).toContain(metricName);
      expect(metricName).toBe('tessera_federation_queue_depth');
    });

    if (overlay === 'overlays/prod') {
      it('pins the release image and creates no Secret (they come from the cluster)', () => {
        expect(secrets).toEqual([]);
        const ns = byKind(objects, 'Namespace');
        expect(ns.map((n) => n.metadata.name)).toEqual(['tessera']);
        for (const d of tessera) expect(d.metadata.namespace).toBe('tessera');
      });
    }
  });
}

function secretKnown(secrets: K8sObject[], name: string): boolean {
  return secrets.some((s) => s.metadata.name === name) || name in EXTERNAL_SECRETS;
}

/** The container's environment from its envFrom ConfigMaps and literal env (Secrets excluded). */
function containerEnv(container: any, configMaps: K8sObject[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const cm = from.configMapRef && configMaps.find((c) => c.metadata.name === from.configMapRef.name);
    if (cm) Object.assign(env, cm.data);
  }
  for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = String(e.value);
  return env;
}

function bytes(q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|K|M|G)?$/.exec(String(q));
  if (!m) throw new Error(`not a memory quantity: ${q}`);
  const unit = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, K: 1e3, M: 1e6, G: 1e9 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}

function cpu(q: string | number): number {
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

describe('deploy/k8s kustomizations (as files)', () => {
  const dirs = ['base', 'overlays/dev', 'overlays/prod'];

  /** Every file a kustomization names: resources, patches, generator sources. */
  function referenced(dir: string): Set<string> {
    const k = parse(readFileSync(join(K8S, dir, 'kustomization.yaml'), 'utf8'));
    const files = new Set<string>();
    for (const r of k.resources ?? []) files.add(r);
    for (const p of k.patches ?? []) if (p.path) files.add(p.path);
    for (const p of k.patchesStrategicMerge ?? []) files.add(p);
    for (const g of [...(k.configMapGenerator ?? []), ...(k.secretGenerator ?? [])]) {
      for (const f of g.files ?? []) files.add(String(f).split('=').pop()!);
      for (const f of g.envs ?? []) files.add(f);
    }
    return files;
  }

  function filesUnder(dir: string): string[] {
    const out: string[] = [];
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) out.push(...filesUnder(path));
      else out.push(path);
    }
    return out;
  }

  it('lists every file of its folder, and every file it lists exists', () => {
    for (const dir of dirs) {
      const refs = referenced(dir);
      for (const ref of refs) {
        const path = join(K8S, dir, ref);
        expect(existsSync(path) || ref === 'signing.key', `${dir}: ${ref} exists`).toBe(true);
      }
      const own = filesUnder(join(K8S, dir))
        .map((f) => relative(join(K8S, dir), f))
        .filter((f) => !['kustomization.yaml', '.gitignore', 'signing.key'].includes(f));
      for (const f of own) expect(refs.has(f), `${dir}/kustomization.yaml lists ${f}`).toBe(true);
    }
  });

  it('keeps the dev signing key out of git', () => {
    expect(readFileSync(join(K8S, 'overlays/dev/.gitignore'), 'utf8').split('\n')).toContain('signing.key');
  });

  it('documents every Secret it expects from the cluster', () => {
    const ops = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');
    for (const name of Object.keys(EXTERNAL_SECRETS)) expect(ops, `docs/operations.md mentions ${name}`).toContain(name);
  });
});
