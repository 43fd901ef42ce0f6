// IndexedDB voice store: the persistent tier under the engine's in-memory voice cache.
//
// The engine (Rust, `kokoro_voice::VoiceCache`) keeps voices in memory within a byte budget; it
// asks this store for bytes through `fetch(name)` and `list()` (the `VoiceStore` trait, bridged in
// crates/kokoro-wasm/src/store.rs). This store keeps voice files in IndexedDB across reloads:
// least recently used first out when over its byte budget, pinned (pre-warmed) voices kept, usage
// counts and the pre-warm state persisted. A full disk (QuotaExceededError) evicts and retries,
// and if nothing can be evicted the voice is served without being stored: a request never fails
// because the cache could not keep something.

const DB_NAME = 'kokoro-burn';
const DB_VERSION = 1;
const VOICES = 'voices';
const META = 'meta';
const NAME_RE = /^[A-Za-z0-9_]{1,64}$/;

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new DOMException('transaction aborted', 'AbortError'));
  });
}

function openDb(name) {
  const req = indexedDB.open(name, DB_VERSION);
  req.onupgradeneeded = () => {
    const db = req.result;
    if (!db.objectStoreNames.contains(VOICES)) db.createObjectStore(VOICES, { keyPath: 'name' });
    if (!db.objectStoreNames.contains(META)) db.createObjectStore(META);
  };
  return request(req);
}

export class UnknownVoiceError extends Error {
  constructor(name) {
    super(`unknown voice ${JSON.stringify(name)}`);
    this.name = 'UnknownVoice';
  }
}

export function isQuotaError(e) {
  return e && (e.name === 'QuotaExceededError' || e.code === 22);
}

export class IdbVoiceStore {
  /**
   * @param {object} o
   * @param {string} o.voicesUrl base URL of NAME.bin files (and index.json)
   * @param {number} [o.budgetBytes] bytes of voice files kept (default 64 MiB: ~120 voices)
   * @param {string} [o.dbName]
   * @param {(event: object) => void} [o.log]
   */
  static async open({ voicesUrl, budgetBytes = 64 << 20, dbName = DB_NAME, log = () => {} }) {
    const store = new IdbVoiceStore();
    store.base = voicesUrl.endsWith('/') ? voicesUrl : voicesUrl + '/';
    store.budget = budgetBytes;
    store.db = await openDb(dbName);
    store.log = log;
    store.counters = (await store.#meta('counters')) || { hits: 0, misses: 0, networkFetches: 0, networkBytes: 0, evictions: 0, quotaErrors: 0 };
    // Test hook: a write that throws QuotaExceededError this many times (see the e2e tests).
    store.failWrites = 0;
    return store;
  }

  async #meta(key) {
    const tx = this.db.transaction(META, 'readonly');
    return request(tx.objectStore(META).get(key));
  }

  async #setMeta(key, value) {
    const tx = this.db.transaction(META, 'readwrite');
    tx.objectStore(META).put(value, key);
    await done(tx);
  }

  async #saveCounters() {
    await this.#setMeta('counters', this.counters);
  }

  /** Every record, without the voice bytes. */
  async entries() {
    const tx = this.db.transaction(VOICES, 'readonly');
    const all = await request(tx.objectStore(VOICES).getAll());
    return all.map(({ bytes, ...rest }) => rest);
  }

  async #get(name) {
    const tx = this.db.transaction(VOICES, 'readonly');
    return request(tx.objectStore(VOICES).get(name));
  }

  async #touch(record, use) {
    if (use) record.uses += 1;
    record.lastUsed = Date.now();
    const tx = this.db.transaction(VOICES, 'readwrite');
    tx.objectStore(VOICES).put(record);
    await done(tx);
  }

  /** Removes least recently used records (unpinned first; pinned only if `pinnedToo`) until `need` more bytes fit. */
  async #makeRoom(need, pinnedToo = false) {
    const entries = await this.entries();
    let total = entries.reduce((s, e) => s + e.size, 0);
    const order = entries
      .filter((e) => pinnedToo || !e.pinned)
      .sort((a, b) => (a.pinned - b.pinned) || (a.lastUsed - b.lastUsed));
    const evicted = [];
    for (const e of order) {
      if (total + need <= this.budget) break;
      await this.#delete(e.name);
      total -= e.size;
      evicted.push(e.name);
    }
    if (evicted.length) {
      this.counters.evictions += evicted.length;
      this.log({ event: 'evict', voices: evicted, reason: 'budget' });
    }
    return total + need <= this.budget;
  }

  async #delete(name) {
    const tx = this.db.transaction(VOICES, 'readwrite');
    tx.objectStore(VOICES).delete(name);
    await done(tx);
  }

  /** Stores a voice file; false if it could not be kept (too big, or the disk is full even after evicting). */
  async #put(name, bytes, pinned, uses) {
    if (bytes.byteLength > this.budget) return false;
    if (!(await this.#makeRoom(bytes.byteLength))) return false;
    const record = { name, bytes: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), size: bytes.byteLength, uses, lastUsed: Date.now(), storedAt: Date.now(), pinned };
    for (;;) {
      try {
        if (this.failWrites > 0) {
          this.failWrites -= 1;
          throw new DOMException('simulated: the origin is out of storage', 'QuotaExceededError');
        }
        const tx = this.db.transaction(VOICES, 'readwrite');
        tx.objectStore(VOICES).put(record);
        await done(tx);
        return true;
      } catch (e) {
        if (!isQuotaError(e)) throw e;
        this.counters.quotaErrors += 1;
        const victims = (await this.entries()).filter((x) => !x.pinned && x.name !== name).sort((a, b) => a.lastUsed - b.lastUsed);
        this.log({ event: 'quota', voice: name, evicting: victims[0]?.name ?? null });
        if (!victims.length) return false;
        await this.#delete(victims[0].name);
        this.counters.evictions += 1;
      }
    }
  }

  async #download(name) {
    const url = this.base + name + '.bin';
    const resp = await fetch(url);
    if (resp.status === 404) throw new UnknownVoiceError(name);
    if (!resp.ok) throw new Error(`voice ${name}: HTTP ${resp.status} from ${url}`);
    const bytes = new Uint8Array(await resp.arrayBuffer());
    this.counters.networkFetches += 1;
    this.counters.networkBytes += bytes.byteLength;
    return bytes;
  }

  /**
   * The voice file for `name`: from IndexedDB, else the network (then kept). The engine calls
   * this for requests (`use`: counted in the usage); pre-warming calls it with `pin`.
   */
  async fetch(name, { pin = false, use = true } = {}) {
    if (!NAME_RE.test(name)) throw new UnknownVoiceError(name);
    const record = await this.#get(name);
    if (record) {
      this.counters.hits += 1;
      if (pin) record.pinned = true;
      await this.#touch(record, use);
      await this.#saveCounters();
      return new Uint8Array(record.bytes);
    }
    this.counters.misses += 1;
    const t0 = performance.now();
    const bytes = await this.#download(name);
    const kept = await this.#put(name, bytes, pin, use ? 1 : 0);
    this.log({ event: 'download', voice: name, bytes: bytes.byteLength, ms: Math.round(performance.now() - t0), kept });
    await this.#saveCounters();
    return bytes;
  }

  /** Voice names: the server's index.json (remembered for offline use), else what is stored. */
  async list() {
    try {
      const resp = await fetch(this.base + 'index.json');
      if (resp.ok) {
        const names = (await resp.json()).filter((n) => NAME_RE.test(n)).sort();
        await this.#setMeta('index', names);
        return names;
      }
    } catch (_) { /* offline: fall through */ }
    const known = await this.#meta('index');
    if (known) return known;
    return (await this.entries()).map((e) => e.name).sort();
  }

  /** Pre-warming: fetches and pins `names`, persisting progress so a reload knows what is warm. */
  async prewarm(names, onProgress = () => {}) {
    const state = { names: [...names], done: [], failed: [], startedAt: Date.now(), finishedAt: null };
    await this.#setMeta('prewarm', state);
    for (const name of names) {
      const t0 = performance.now();
      try {
        await this.fetch(name, { pin: true, use: false });
        state.done.push(name);
      } catch (e) {
        state.failed.push({ name, error: e.message });
      }
      await this.#setMeta('prewarm', state);
      onProgress({ phase: 'prewarm', voice: name, done: state.done.length + state.failed.length, total: names.length, ms: performance.now() - t0 });
    }
    state.finishedAt = Date.now();
    await this.#setMeta('prewarm', state);
    this.log({ event: 'prewarm', done: state.done.length, failed: state.failed.length });
    return state;
  }

  /** The persisted pre-warm state (null if never pre-warmed). */
  async prewarmState() {
    return (await this.#meta('prewarm')) ?? null;
  }

  /** Drops a voice from IndexedDB (and from the pre-warm list); true if it was stored. */
  async evict(name) {
    const had = !!(await this.#get(name));
    await this.#delete(name);
    const state = await this.#meta('prewarm');
    if (state && state.names.includes(name)) {
      state.names = state.names.filter((n) => n !== name);
      state.done = state.done.filter((n) => n !== name);
      await this.#setMeta('prewarm', state);
    }
    return had;
  }

  async setBudget(bytes) {
    this.budget = bytes;
    await this.#makeRoom(0, true);
    await this.#saveCounters();
  }

  async stats() {
    const entries = (await this.entries()).sort((a, b) => b.lastUsed - a.lastUsed);
    const bytes = entries.reduce((s, e) => s + e.size, 0);
    const lookups = this.counters.hits + this.counters.misses;
    let quota = null;
    try {
      quota = await navigator.storage.estimate();
    } catch (_) { /* not everywhere */ }
    return {
      budget: this.budget,
      bytes,
      entries,
      ...this.counters,
      hitRate: lookups ? this.counters.hits / lookups : 0,
      prewarm: await this.prewarmState(),
      quota: quota && { usage: quota.usage, quota: quota.quota },
    };
  }
}
