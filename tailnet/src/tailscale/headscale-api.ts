/** What Kiln needs from a coordination server: keys for joining nodes, the node list, node removal, health. */
export interface Coordinator {
  readonly url: string;
  /** A key that joins one node (unless reusable) with `tags`; ephemeral nodes are removed when they go away. */
  createPreauthKey(options: { tags: string[]; user?: string; ephemeral?: boolean; reusable?: boolean; expiresInMs?: number }): Promise<PreauthKey>;
  listNodes(): Promise<HeadscaleNode[]>;
  deleteNode(id: string): Promise<void>;
  /** Deletes every node holding `address`; returns how many were deleted. */
  deleteNodesByAddress(address: string): Promise<number>;
  /** Replaces the ACL policy (headscale's database policy mode). */
  setPolicy(policy: object): Promise<void>;
  /** Whether the coordination server answers; never throws. */
  healthy(): Promise<boolean>;
}

export interface PreauthKey {
  key: string;
  ephemeral: boolean;
  reusable: boolean;
  tags: string[];
}

export interface HeadscaleNode {
  id: string;
  /** The DNS name headscale gave it (the hostname, with a suffix on collisions). */
  name: string;
  /** The hostname the node asked for. */
  hostname: string;
  /** The headscale user that owns it (tagged nodes: the user whose key joined them). */
  user: string;
  ipAddresses: string[];
  tags: string[];
  online: boolean;
}

export class HeadscaleApiError extends Error {
  override readonly name = "HeadscaleApiError";
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/**
 * headscale's REST API (grpc-gateway: camelCase JSON, 64-bit ids as strings), authenticated with an API key
 * (`headscale apikeys create`). Used for the embedded headscale and for an external one alike.
 */
export class HeadscaleApi implements Coordinator {
  readonly url: string;
  readonly #apiKey: string;
  readonly #user: string;
  readonly #userIds = new Map<string, Promise<string>>();

  /** `user` owns the preauth keys Kiln creates (and, through tagOwners, its tags) unless a key names another; users are created when missing. */
  constructor(options: { url: string; apiKey: string; user: string }) {
    this.url = options.url.replace(/\/$/, "");
    this.#apiKey = options.apiKey;
    this.#user = options.user;
  }

  async createPreauthKey(options: { tags: string[]; user?: string; ephemeral?: boolean; reusable?: boolean; expiresInMs?: number }): Promise<PreauthKey> {
    const body = {
      user: await this.#ensureUser(options.user ?? this.#user),
      reusable: options.reusable ?? false,
      ephemeral: options.ephemeral ?? true,
      expiration: new Date(Date.now() + (options.expiresInMs ?? 10 * 60_000)).toISOString(),
      aclTags: options.tags,
    };
    const { preAuthKey } = await this.#call<{ preAuthKey: { key: string; ephemeral?: boolean; reusable?: boolean; aclTags?: string[] } }>("POST", "/api/v1/preauthkey", body);
    return { key: preAuthKey.key, ephemeral: preAuthKey.ephemeral ?? false, reusable: preAuthKey.reusable ?? false, tags: preAuthKey.aclTags ?? [] };
  }

  async listNodes(): Promise<HeadscaleNode[]> {
    const { nodes } = await this.#call<{ nodes?: { id: string; name?: string; givenName?: string; user?: { name?: string }; ipAddresses?: string[]; tags?: string[]; online?: boolean }[] }>("GET", "/api/v1/node");
    return (nodes ?? []).map((node) => ({
      id: String(node.id),
      name: node.givenName || node.name || "",
      hostname: node.name ?? "",
      user: node.user?.name ?? "",
      ipAddresses: node.ipAddresses ?? [],
      tags: node.tags ?? [],
      online: node.online ?? false,
    }));
  }

  async deleteNode(id: string): Promise<void> {
    await this.#call("DELETE", `/api/v1/node/${encodeURIComponent(id)}`);
  }

  async deleteNodesByAddress(address: string): Promise<number> {
    const nodes = (await this.listNodes()).filter((node) => node.ipAddresses.includes(address));
    for (const node of nodes) await this.deleteNode(node.id);
    return nodes.length;
  }

  async setPolicy(policy: object): Promise<void> {
    await this.#call("PUT", "/api/v1/policy", { policy: JSON.stringify(policy, null, 2) });
  }

  async healthy(): Promise<boolean> {
    try {
      return (await fetch(`${this.url}/health`, { signal: AbortSignal.timeout(3000) })).ok;
    } catch {
      return false;
    }
  }

  #ensureUser(name: string): Promise<string> {
    let id = this.#userIds.get(name);
    if (!id) {
      id = (async () => {
        const find = async () => (await this.#call<{ users?: { id: string; name: string }[] }>("GET", `/api/v1/user?name=${encodeURIComponent(name)}`)).users?.find((user) => user.name === name);
        const existing = await find();
        if (existing) return String(existing.id);
        try {
          return String((await this.#call<{ user: { id: string } }>("POST", "/api/v1/user", { name })).user.id);
        } catch (error) {
          // Another replica may have created it first.
          const raced = await find();
          if (raced) return String(raced.id);
          throw error;
        }
      })();
      this.#userIds.set(name, id);
      id.catch(() => this.#userIds.delete(name));
    }
    return id;
  }

  async #call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.#apiKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (error) {
      throw new HeadscaleApiError(0, `headscale at ${this.url} is unreachable (${method} ${path}): ${error instanceof Error ? error.message : String(error)}`);
    }
    const text = await response.text();
    if (!response.ok) {
      let message = text.trim().slice(0, 500);
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? message;
      } catch {
        // not JSON: keep the text
      }
      throw new HeadscaleApiError(response.status, `headscale ${method} ${path}: HTTP ${response.status}: ${message}`);
    }
    return (text ? JSON.parse(text) : {}) as T;
  }
}
