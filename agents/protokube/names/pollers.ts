// One poll of the state store for the control plane's addresses.
// - ControlPlaneNames (on control-plane instances): renew this instance's
//   registration when due, list the registrations once, drop the silent ones,
//   delete what is surely gone, and publish the live addresses for workers
//   when the published object says otherwise.
// - PublishedNames (on workers, --names-only): one conditional GET of the
//   published object; unchanged costs a 304.
import type { Logger } from '../../../shared/log.js';
import type { StateStore } from '../../../shared/store/types.js';
import type { Metrics } from '../metrics.js';
import { parsePublished, PUBLISHED_PATH, renderPublished } from './published.js';
import {
  liveAddresses,
  REGISTRATION_FOLDER,
  registrationBody,
  registrationName,
  registrationPath,
  viewRegistrations,
  type InstanceIdentity,
} from './registry.js';

export interface Clock {
  /** Wall-clock time (only for the registration's body and as a last resort). */
  now(): Date;
  /** Monotonic milliseconds. */
  monotonic(): number;
}

export const systemClock: Clock = { now: () => new Date(), monotonic: () => performance.now() };

export interface NamesPoller {
  /** The live control-plane addresses; throws when the store cannot tell. */
  poll(): Promise<string[]>;
}

const STORE_OPS = 'protokube_store_requests_total';
const STORE_OPS_HELP = 'state store requests made by the names loop, by operation';

export class ControlPlaneNames implements NamesPoller {
  /** When (monotonic) this instance last wrote its registration, and the store time it got. */
  private heartbeat?: { at: number; modified?: Date };
  /** Store time of this process's first registration: older ones under its name are its past self. */
  private since?: Date;
  private publishedVersion?: string;
  private publishedBytes?: string;
  private readonly reported = new Set<string>();

  constructor(
    private readonly store: StateStore,
    private readonly self: InstanceIdentity,
    private readonly options: { cluster: string; ttlMs: number; log: Logger; metrics: Metrics; clock?: Clock },
  ) {}

  private get clock(): Clock {
    return this.options.clock ?? systemClock;
  }

  private count(op: string): void {
    this.options.metrics.inc(STORE_OPS, STORE_OPS_HELP, { op });
  }

  private async renewIfDue(): Promise<void> {
    const now = this.clock.monotonic();
    if (this.heartbeat && this.heartbeat.modified && now - this.heartbeat.at < this.options.ttlMs / 3) return;
    this.count('write');
    await this.store.write(registrationPath(this.self), registrationBody(this.self, this.options.cluster, this.clock.now()));
    const first = this.heartbeat === undefined;
    this.heartbeat = { at: now };
    if (first) this.options.log.info('registered this control-plane instance', { event: 'registration-written', instance: this.self.name, address: this.self.address, zone: this.self.zone });
  }

  async poll(): Promise<string[]> {
    await this.renewIfDue();
    // The published object is read before the listing: a write below is conditional on this version,
    // so an instance whose listing is older than someone else's publish never overwrites it.
    const published = await this.readPublished();
    this.count('list');
    const listed = await this.store.listObjects(REGISTRATION_FOLDER);
    const own = listed.find((o) => o.name === registrationName(this.self));
    let reference: Date;
    if (own && this.heartbeat) {
      this.heartbeat.modified ??= own.modified;
      this.since ??= own.modified;
      reference = new Date(this.heartbeat.modified.getTime() + (this.clock.monotonic() - this.heartbeat.at));
    } else {
      // Our object is not listed (deleted by hand, or a store that lists late): judge by our clock, write again next poll.
      if (this.heartbeat) this.heartbeat.modified = undefined;
      reference = this.clock.now();
    }
    const view = viewRegistrations(listed, this.self, reference, this.options.ttlMs, this.since);
    for (const r of view.silent) this.reportOnce(`silent:${r.path}`, () => this.options.log.info('a control-plane instance went silent; dropped from the names', { event: 'registration-silent', instance: r.name, address: r.address, lastSeen: r.modified.toISOString() }));
    for (const r of [...view.expired, ...view.pastSelf]) {
      this.count('delete');
      await this.store.delete(r.path);
      this.options.log.info('removed a registration of an instance that is gone', { event: 'registration-removed', instance: r.name, address: r.address, lastSeen: r.modified.toISOString(), why: view.pastSelf.includes(r) ? 'this instance under an older address' : 'silent for 10 × the TTL' });
    }
    for (const r of view.sameNameOthers) this.reportOnce(`dup:${r.path}`, () => this.options.log.warn('another live instance registered under this instance\'s name; set --instance-name', { event: 'duplicate-instance-name', instance: r.name, address: r.address }));
    for (const name of view.foreign) this.reportOnce(`foreign:${name}`, () => this.options.log.warn('an object that is not a registration is in the registrations folder; ignored', { event: 'registration-foreign', object: name }));
    // Forget reports of registrations that are back or gone, so a second silence is logged again.
    const present = new Set(listed.map((o) => o.path));
    for (const key of [...this.reported]) {
      const path = key.slice(key.indexOf(':') + 1);
      if (key.startsWith('silent:') && (!present.has(path) || view.live.some((r) => r.path === path))) this.reported.delete(key);
    }
    const addresses = liveAddresses(view, this.self);
    await this.publish(addresses, published);
    return addresses;
  }

  private reportOnce(key: string, report: () => void): void {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    report();
  }

  /** The published object's bytes and version (undefined: none), with a conditional GET. */
  private async readPublished(): Promise<{ bytes?: string; version?: string }> {
    this.count('conditional-get');
    const current = await this.store.readIfChanged(PUBLISHED_PATH, this.publishedVersion);
    if (current.status === 'missing') {
      this.publishedVersion = undefined;
      this.publishedBytes = undefined;
    }
    if (current.status === 'changed') {
      this.publishedVersion = current.object.version;
      this.publishedBytes = current.object.data.toString('utf8');
    }
    return { bytes: this.publishedBytes, version: this.publishedVersion };
  }

  /**
   * Rewrites the published object only when it says something else than this
   * view, and only if nobody rewrote it since it was read (If-Match, or
   * If-None-Match when there was none): two instances whose listings differ
   * for a moment then cannot take turns overwriting each other.
   */
  private async publish(addresses: string[], published: { bytes?: string; version?: string }): Promise<void> {
    const wanted = renderPublished({ cluster: this.options.cluster, addresses });
    if (published.bytes === wanted) return;
    this.count('write');
    const version = published.version === undefined
      ? await this.store.createIfAbsent(PUBLISHED_PATH, wanted)
      : await this.store.replaceIfVersion(PUBLISHED_PATH, wanted, published.version);
    if (version === undefined) {
      this.options.log.debug('the published addresses changed since they were read; left to the next poll', { event: 'names-publish-skipped', addresses });
      return;
    }
    this.publishedVersion = version;
    this.publishedBytes = wanted;
    this.options.log.info('published the live control-plane addresses', { event: 'names-published', addresses });
  }

  /** Removes this instance's registration (a clean stop), so the others drop it at their next poll. */
  async deregister(): Promise<void> {
    this.count('delete');
    await this.store.delete(registrationPath(this.self));
    this.options.log.info('removed this instance\'s registration', { event: 'registration-deleted', instance: this.self.name, address: this.self.address });
  }
}

export class PublishedNames implements NamesPoller {
  private version?: string;
  private addresses?: string[];
  private problem?: Error;

  constructor(
    private readonly store: StateStore,
    private readonly options: { cluster: string; metrics: Metrics },
  ) {}

  async poll(): Promise<string[]> {
    this.options.metrics.inc(STORE_OPS, STORE_OPS_HELP, { op: 'conditional-get' });
    const read = await this.store.readIfChanged(PUBLISHED_PATH, this.version);
    if (read.status === 'missing') {
      this.version = undefined;
      throw new Error(`${this.store.urlOf(PUBLISHED_PATH)} does not exist (yet): no control-plane instance has published its addresses`);
    }
    if (read.status === 'changed') {
      // Remembered even when bad, so the same bad bytes are not downloaded again every poll.
      this.version = read.object.version;
      try {
        this.addresses = parsePublished(read.object.data, this.options.cluster).addresses;
        this.problem = undefined;
      } catch (err) {
        this.problem = new Error(`${this.store.urlOf(PUBLISHED_PATH)}: ${(err as Error).message}`);
      }
    }
    if (this.problem) throw this.problem;
    return this.addresses ?? [];
  }
}
