/**
 * The service core: everything the Express server and the Lambda handlers share, built once from
 * the Config. Transports call `handle(request)` and nothing else.
 */
import { ApiKeyAuthenticator, ApiKeyRegistry } from './auth/apiKeys.ts';
import { apiKeyDocumentsFor } from './auth/fromConfig.ts';
import { LdapDirectory } from './auth/directory.ts';
import { SessionTokens } from './auth/sessions.ts';
import { LoginThrottle } from './auth/throttle.ts';
import { LogStreamAuditLog, type AuditLog } from './audit/auditLog.ts';
import type { Config } from './config/config.ts';
import { PseudonymEngine } from './engine/engine.ts';
import { SqliteErasureLedger } from './erasure/sqliteLedger.ts';
import { DynamoErasureLedger } from './erasure/dynamoLedger.ts';
import type { ErasureLedger } from './erasure/ledger.ts';
import { ErasureRequests } from './erasure/requests.ts';
import { SuppressionLifts } from './erasure/lifts.ts';
import { erasureRunnerFor } from './erasure/fromConfig.ts';
import { ErasureWorker } from './erasure/worker.ts';
import { SuppressionCoverage } from './erasure/coverage.ts';
import { engineOperations, ErasureSuppression, type PseudonymOperations } from './erasure/suppression.ts';
import { TableRegistry } from './erasure/registry.ts';
import { ConfigError, errorMessage } from './errors.ts';
import { createRequestHandler } from './http/handler.ts';
import type { CoreRequest, CoreResponse } from './http/types.ts';
import { keyringManagerFor } from './keyring/fromConfig.ts';
import { Keyring } from './keyring/keyring.ts';
import type { KeyringManager } from './keyring/manager.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { ServiceMetrics } from './observability/metrics.ts';
import { PolicySet } from './policy/policy.ts';
import openApiDocument from './openapi.json' with { type: 'json' };

export interface ServiceOptions {
  /** Use this logger instead of one writing to stdout (tests capture output this way). */
  readonly logger?: Logger;
  /** Run the erasure worker in this process (one process of a deployment does; never a Lambda). */
  readonly erasureWorker?: boolean;
  /**
   * Each instance is a process of its own with its own disk (Lambda: a private /tmp per execution environment).
   * Erasure state on a local file would not be shared between instances, so a SQLite ledger or a local JDBC
   * catalog is refused at start with the setting named, instead of each instance keeping its own ledger.
   */
  readonly sharedStoresOnly?: boolean;
}

export class PseudonymizationService {
  readonly keyring = new Keyring();
  readonly engine: PseudonymEngine;
  /** What the routes pseudonymize and reidentify with: the engine, behind erasure suppression when erasure is on. */
  pseudonyms: PseudonymOperations;
  readonly metrics: ServiceMetrics;
  readonly authenticator: ApiKeyAuthenticator;
  readonly openApiDocument: string;
  readonly handle: (request: CoreRequest) => Promise<CoreResponse>;
  readonly sessions: SessionTokens;
  readonly throttle: LoginThrottle;
  readonly audit: AuditLog;
  /** Right to be forgotten; undefined when no table registry is configured. */
  erasure:
    | {
        readonly ledger: ErasureLedger;
        readonly registry: TableRegistry;
        readonly requests: ErasureRequests;
        readonly lifts: SuppressionLifts;
        readonly suppression: ErasureSuppression;
        /** Suppressions follow rotation; run by the erasure worker's rounds (the server's and the Lambda step's). */
        readonly coverage: SuppressionCoverage;
        worker?: ErasureWorker;
      }
    | undefined;
  private directory: Promise<LdapDirectory> | undefined;
  private readonly keyringManager: KeyringManager;
  private refreshTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly config: Config,
    readonly logger: Logger,
    readonly policies: PolicySet,
    openApiDocument: string,
  ) {
    this.keyringManager = keyringManagerFor(config.keyring);
    this.engine = new PseudonymEngine(this.keyring, policies, { cacheEntries: config.cacheEntries, maxValueBytes: config.limits.maxValueBytes });
    this.pseudonyms = engineOperations(this.engine);
    const registry = new ApiKeyRegistry(apiKeyDocumentsFor(config.apiKeys));
    this.authenticator = new ApiKeyAuthenticator(registry, config.apiKeys.refreshSeconds * 1000, (error) => {
      logger.warn({ registry: registry.description, error: errorMessage(error) }, 'API key registry refresh failed; keeping the registry already loaded');
    });
    this.openApiDocument = openApiDocument;
    this.sessions = new SessionTokens(this.keyring, config.people.sessionTtlSeconds);
    this.throttle = new LoginThrottle(config.people.maxFailures, config.people.lockSeconds * 1000);
    this.audit = new LogStreamAuditLog(logger);
    this.metrics = new ServiceMetrics({
      cache: () => ({ hits: this.engine.cacheHits, misses: this.engine.cacheMisses, entries: this.engine.cacheSize }),
      keyring: () => ({ loaded: this.keyring.loaded, activeVersion: this.keyring.loaded ? this.keyring.active().version : undefined }),
      erasureLedger: () => this.erasure?.ledger,
    });
    this.handle = createRequestHandler(this);
  }

  /** Builds the service and loads the keyring. A keyring that cannot load leaves the service up but not ready; it retries. */
  static async start(config: Config, options: ServiceOptions = {}): Promise<PseudonymizationService> {
    const logger = options.logger ?? createLogger(config.logLevel);
    const policies = PolicySet.fromFile(config.policyFile);
    try {
      policies.resolve(config.compatContext);
    } catch {
      throw new ConfigError('PSEUDO_COMPAT_CONTEXT: the context is not configured in the policy file');
    }
    const service = new PseudonymizationService(config, logger, policies, JSON.stringify(openApiDocument));
    if (config.erasure.registryFile) {
      const store = config.erasure.ledger;
      if (options.sharedStoresOnly && store.store === 'sqlite') {
        throw new ConfigError('PSEUDO_ERASURE_LEDGER: sqlite keeps the ledger in one instance\'s file, which other instances never see; use dynamodb here');
      }
      const registry = await TableRegistry.load(config.erasure.registryFile, policies, config.aws, { sharedCatalogOnly: options.sharedStoresOnly === true });
      const ledger = store.store === 'dynamodb' ? new DynamoErasureLedger(store) : SqliteErasureLedger.open(store.file, config.erasure.ledgerHeadFile).ledger;
      // Withholding and the ingestion check read a cached set of erased pseudonyms, at most cacheSeconds old.
      const suppression = new ErasureSuppression(ledger, service.engine, service.keyring, { cacheSeconds: config.erasure.cacheSeconds });
      const requests = new ErasureRequests(ledger, suppression, policies, registry);
      const coverage = new SuppressionCoverage(ledger, service.engine, service.keyring, policies);
      service.erasure = { ledger, registry, suppression, requests, lifts: new SuppressionLifts(ledger, suppression, requests), coverage };
      service.pseudonyms = suppression;
      if (options.erasureWorker) {
        const { erasure } = config;
        service.erasure.worker = new ErasureWorker(ledger, registry, suppression, policies, erasureRunnerFor(erasure.runner), erasure, logger, service.metrics.erasure, coverage);
      }
    }
    await service.refreshKeyring();
    // After the keyring: a run recomputes its subjects' pseudonyms under the versions loaded now.
    service.erasure?.worker?.start();
    service.refreshTimer = setInterval(() => void service.refreshKeyring(), config.keyring.refreshSeconds * 1000);
    service.refreshTimer.unref();
    return service;
  }

  /** The directory people sign in with, or undefined when PSEUDO_LDAP_URL is not set. A failed open is retried at the next sign-in. */
  async peopleDirectory(): Promise<LdapDirectory | undefined> {
    const ldap = this.config.people.ldap;
    if (!ldap) return undefined;
    this.directory ??= LdapDirectory.open(ldap).catch((error: unknown) => {
      this.directory = undefined;
      throw error;
    });
    return this.directory;
  }

  get ready(): boolean {
    return this.keyring.loaded;
  }

  /** Loads the keyring; on failure keeps the keys it has and says so in the log and a metric. */
  async refreshKeyring(): Promise<void> {
    try {
      this.keyring.apply(await this.keyringManager.load());
    } catch (error) {
      this.metrics.keyringRefreshFailures.inc();
      this.logger.error({ keyring: this.keyringManager.description, error: errorMessage(error) }, 'keyring load failed; keeping the keys already loaded');
    }
  }

  /**
   * Loads the keyring now (SIGHUP, POST /v1/admin/keyring/reload) instead of at the next refresh, and answers the active
   * version. A failed load keeps the keys already loaded and throws, so the caller learns it did not happen.
   */
  async reloadKeyring(): Promise<number> {
    this.keyring.apply(await this.keyringManager.load());
    return this.keyring.active().version;
  }

  close(): void {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    this.erasure?.worker?.stop();
    void this.erasure?.ledger.close();
    this.keyring.close();
  }
}
