// Package config loads a resc-go configuration (JSON or Hjson, chosen by the
// file extension), applies defaults and reports every problem it finds.
//
// The format is a superset of the Rust resc's: every resc configuration loads
// and means what resc documents. Problems carry the file, the watcher, the
// rule and the field they concern, and Load reports all of them at once
// (never the first one only, never a panic, never a silently ignored value).
//
// Config is a leaf package: it checks structure and types. Compiling the
// regular expressions and ${var} patterns, and checking that every variable
// can be defined, is done by package rules, which reports its findings as
// Problems of this package so that `resc check` lists both together.
package config

import "time"

// Defaults of the extensions; resc's own keys have resc's defaults.
const (
	DefaultKeyPrefix        = "resc:"
	DefaultConcurrency      = 1024
	DefaultFetchConcurrency = 64
	DefaultBatchSize        = 256
	DefaultFetchTimeout     = 10 * time.Second
	DefaultFetchRetries     = 3
	DefaultFetchMaxBody     = 10 << 20
	DefaultFetchBackoffMin  = 100 * time.Millisecond
	DefaultFetchBackoffMax  = 2 * time.Second
	DefaultBreakerFailures  = 5
	DefaultBreakerOpen      = 10 * time.Second
	DefaultBreakerHalfOpen  = 1
	DefaultTask             = "${input_task}"

	// DefaultListenerStreamMaxLen is the default listener_stream_maxlen.
	DefaultListenerStreamMaxLen = 100000

	// DefaultMaxEventBytes is the default max_event_bytes, 16 MiB: more
	// than any event resc-go was measured to handle well, far below
	// Redis's 512 MB limit. MaxMaxEventBytes is that limit.
	DefaultMaxEventBytes = 16 << 20
	MaxMaxEventBytes     = 512 << 20

	// The cluster timings (key "cluster"), for ClusterSettings; packages
	// cluster and recovery use these as their own defaults.
	DefaultHeartbeatInterval = time.Second
	DefaultDeadAfter         = 5 * time.Second
	DefaultLeaderTTL         = 4 * time.Second
	DefaultScanInterval      = time.Second
	DefaultReplayDelay       = time.Second
	DefaultMaxReplays        = 3
	DefaultDeadRetention     = time.Hour
)

// Limits of the extensions: larger values are problems.
const (
	// MaxConcurrency bounds concurrency and fetch_concurrency.
	MaxConcurrency = 100000
	// MaxBatchSize bounds batch_size.
	MaxBatchSize = 10000
	// MaxBreakerCount bounds breaker_failures and breaker_half_open_requests.
	MaxBreakerCount = 1000000
)

// Config is a loaded configuration with its defaults applied.
type Config struct {
	// Path is the file the configuration was read from.
	Path string

	// RedisURL is redis.url, e.g. "redis://127.0.0.1/", starting with
	// redis://, rediss:// or unix://. Empty when the file gives none: it is
	// then required on the command line (which overrides it anyway), and the
	// caller checks that. Old resc files that give a redis object in each
	// watcher instead are accepted, with a warning: their url is used, and
	// they must all give the same one.
	RedisURL string
	// Redis holds the other keys of the redis object: credentials, TLS,
	// Sentinel, cluster mode.
	Redis RedisSettings

	// ListenerChannel is listener_channel: when not empty, every task pushed
	// publishes "<taken_queue> TRIGGER <event> -> <task>" and every event
	// handled "<taken_queue> DONE <event>" there, resc's exact text. Empty
	// (the default) publishes nothing.
	ListenerChannel string

	// ListenerStream is listener_stream: when not empty, the commit that
	// publishes a listener message also appends it, in the same script, to
	// this Redis Stream (XADD, fields type, queue, event and task), trimmed
	// to about ListenerStreamMaxLen entries: a consumer that was
	// disconnected reads on from its last entry ID. Empty (the default)
	// writes no stream. It works with or without ListenerChannel.
	ListenerStream string

	// ListenerStreamMaxLen is listener_stream_maxlen, the length the stream
	// is trimmed to (approximately, MAXLEN ~). Default
	// DefaultListenerStreamMaxLen.
	ListenerStreamMaxLen int64

	// MaxEventBytes is max_event_bytes: an event longer than this many
	// bytes is set aside at take time, before any rule runs: its bytes go
	// to the hash "<key_prefix>oversized:<input_queue>" and a dead-letter
	// entry says where, with its size and its first bytes. Default
	// DefaultMaxEventBytes.
	MaxEventBytes int64

	// KeyPrefix is key_prefix, the prefix of resc-go's internal keys
	// (replica registry, leader lock, retry schedules). Default "resc:";
	// an empty key_prefix is a problem.
	KeyPrefix string

	// HTTPAddr is http_addr, the address of the health and metrics server.
	// Empty means the command line's default (127.0.0.1:9464); "off"
	// disables the server.
	HTTPAddr string

	// Fetch holds the top-level fetch settings (key "fetch"); each fetcher
	// has its own in Fetcher.Settings, these with its keys over them.
	Fetch FetchSettings
	// Reschedule says how an event whose fetch failed for good (its
	// retries spent) is attempted again (keys of the top-level "fetch").
	Reschedule RescheduleSettings

	// Cluster holds the cluster timings (key "cluster").
	Cluster ClusterSettings

	// Watchers are the watchers, in file order. At least one is required.
	Watchers []Watcher

	// Warnings are notes on deprecated resc keys that were accepted
	// (task_set, a watcher's own redis), for `resc check` and the log.
	Warnings []Problem
}

// FetchSettings configure the HTTP fetches of fetch rules: the top-level
// fetch object, and each fetcher's own keys overriding it (Fetcher.Settings).
//
// Zero means the default for every field but Retries and BreakerFailures,
// whose zero means none: the configuration loader fills in the defaults, and
// so does package fetch for settings built by hand.
type FetchSettings struct {
	// Timeout is timeout_ms, the limit of one HTTP attempt, including
	// reading the body. Default 10 s; must be positive.
	Timeout time.Duration
	// Retries is retries, how many times a transient failure (connection
	// error, timeout, 5xx, 408, 429) is retried before the fetch fails.
	// Default 3; 0 means no retry.
	Retries int
	// MaxBody is max_body_bytes, the largest response body read; a larger
	// one is a permanent failure. Default 10 MiB; must be positive.
	MaxBody int64
	// BackoffMin is backoff_min_ms: the wait before retry n (from 0) is
	// drawn between half and all of BackoffMin·2ⁿ, capped at BackoffMax.
	// Default 100 ms; must be positive.
	BackoffMin time.Duration
	// BackoffMax is backoff_max_ms, the longest wait before a retry; it
	// caps the wait a Retry-After header asks for too, so that a server
	// cannot park a fetch for an hour. Default 2 s; must be positive and at
	// least BackoffMin.
	BackoffMax time.Duration
	// BreakerFailures is breaker_failures: after this many fetches to one
	// host (scheme, host and port) failing in a row, the host's circuit
	// breaker opens and fetches to it fail at once, without a request,
	// for BreakerOpen. Default 5; 0 means no circuit breaker.
	BreakerFailures int
	// BreakerOpen is breaker_open_ms, how long an open breaker refuses
	// fetches before it lets probes through (half-open). Default 10 s; must
	// be positive.
	BreakerOpen time.Duration
	// BreakerHalfOpen is breaker_half_open_requests, how many probe fetches
	// a half-open breaker lets through at once; that many successes in a
	// row close it, one failure opens it again. Default 1; must be positive.
	BreakerHalfOpen int
}

// Defaults of RescheduleSettings.
const (
	DefaultRescheduleAttempts = 8
	DefaultRescheduleDelay    = 5 * time.Second
	DefaultRescheduleMaxDelay = 10 * time.Minute
)

// RescheduleSettings schedule again an event whose fetch failed after its
// retries: it waits in Redis (the delay schedule of its input queue) and is
// attempted again, up to Attempts times in all. Load fills in the defaults
// (DefaultRescheduleSettings).
type RescheduleSettings struct {
	// Attempts is fetch.attempts, how many times an event's fetches are
	// attempted in all before it goes to the dead-letter list. Default 8;
	// 1 to 1000.
	Attempts int
	// Delay is fetch.reschedule_delay_ms, the wait after the first failed
	// attempt, doubling after each further one. Default 5 s.
	Delay time.Duration
	// MaxDelay is fetch.reschedule_max_delay_ms, the longest wait. Default
	// 10 min; at least Delay.
	MaxDelay time.Duration
}

// DefaultRescheduleSettings are the reschedule settings of a file without
// the keys.
func DefaultRescheduleSettings() RescheduleSettings {
	return RescheduleSettings{Attempts: DefaultRescheduleAttempts, Delay: DefaultRescheduleDelay, MaxDelay: DefaultRescheduleMaxDelay}
}

// DefaultFetchSettings are the fetch settings of a file without fetch keys.
func DefaultFetchSettings() FetchSettings {
	return FetchSettings{
		Timeout:         DefaultFetchTimeout,
		Retries:         DefaultFetchRetries,
		MaxBody:         DefaultFetchMaxBody,
		BackoffMin:      DefaultFetchBackoffMin,
		BackoffMax:      DefaultFetchBackoffMax,
		BreakerFailures: DefaultBreakerFailures,
		BreakerOpen:     DefaultBreakerOpen,
		BreakerHalfOpen: DefaultBreakerHalfOpen,
	}
}

// ClusterSettings are the timings of the replica registry, the leader and
// its recovery loop. Load fills in the defaults (DefaultClusterSettings) and
// checks how they relate, so a loaded Config's are final. Zero means the
// same here as in packages membership and recovery, which take these as
// they are: for a duration (refused in a file, met in a ClusterSettings
// built by hand) the default, for MaxReplays no replay.
type ClusterSettings struct {
	// HeartbeatInterval is heartbeat_interval_ms, how often a replica
	// renews its heartbeat. Default 1 s; below half of DeadAfter, so that a
	// replica whose renewals fail has two heartbeats of margin to stop
	// working before the others consider it dead.
	HeartbeatInterval time.Duration
	// DeadAfter is dead_after_ms: a replica whose heartbeat is this old is
	// dead and its taken lists are replayed. Default 5 s.
	DeadAfter time.Duration
	// LeaderTTL is leader_ttl_ms, the expiry of the leader lock, extended
	// every third of it. Default 4 s.
	LeaderTTL time.Duration
	// ScanInterval is scan_interval_ms, how often the leader looks for the
	// taken lists of dead replicas. Default 1 s.
	ScanInterval time.Duration
	// ReplayDelay is replay_delay_ms, the wait before the second replay of
	// an event, doubling for each further one. Default 1 s.
	ReplayDelay time.Duration
	// MaxReplays is max_replays: an event replayed more times goes to the
	// dead-letter list. Default 3; 0 sends an orphaned event there at once
	// (recovery.Settings.MaxReplays means the same).
	MaxReplays int
	// DeadRetention is dead_retention_ms: how long a dead replica or SDK
	// worker stays in the registry (in `resc status` and the console)
	// after the leader first found it dead, before the leader removes it;
	// an entry whose taken lists still hold events stays until they are
	// replayed. Default 1 h; 0 keeps dead entries until they deregister
	// or register again (the behaviour before the setting).
	DeadRetention time.Duration
}

// DefaultClusterSettings are the cluster settings of a file without a
// cluster object.
func DefaultClusterSettings() ClusterSettings {
	return ClusterSettings{
		HeartbeatInterval: DefaultHeartbeatInterval,
		DeadAfter:         DefaultDeadAfter,
		LeaderTTL:         DefaultLeaderTTL,
		ScanInterval:      DefaultScanInterval,
		ReplayDelay:       DefaultReplayDelay,
		MaxReplays:        DefaultMaxReplays,
		DeadRetention:     DefaultDeadRetention,
	}
}

// Watcher is one entry of watchers[].
type Watcher struct {
	// Index is the position in watchers[], for messages.
	Index int
	// InputQueue is input_queue, the list the events are taken from.
	// Required, not empty, and watched by one watcher only.
	InputQueue string
	// TakenQueue is taken_queue, default "<input_queue>/taken"; given, it
	// must not be empty. Each replica takes its events into its own list
	// "<taken_queue>/<replica-id>", so no two watchers share a taken queue.
	TakenQueue string
	// Concurrency is concurrency, how many events this watcher holds at once
	// (taken and not yet committed) per replica, and so the most one commit
	// round trip carries. Default 1024; at most MaxConcurrency. Zero (a
	// Watcher built by hand): the default, as for FetchConcurrency and
	// BatchSize (package watcher applies them).
	Concurrency int
	// FetchConcurrency is fetch_concurrency, how many fetches run at once
	// to one host per replica (and at most three quarters of
	// Concurrency). Default 64; at most MaxConcurrency. Events that need no
	// fetch never wait for these slots.
	FetchConcurrency int
	// BatchSize is batch_size, the most events taken in one round trip.
	// Default 256; at most MaxBatchSize.
	BatchSize int
	// Rules are the rules, in file order. At least one is required.
	Rules []Rule
}

// Rule is one entry of a watcher's rules[].
type Rule struct {
	// Index is the position in rules[], for messages.
	Index int
	// Name is name; missing or empty means "<anonymous rule>" like resc.
	Name string
	// On is on (alias on_regex), the regular expression an event must
	// match, with named groups (?P<name>...). Required, not empty; package
	// rules compiles it.
	On string
	// Fetch are the fetch[] entries (alias fetchers), in order; none means
	// the rule needs no fetch.
	Fetch []Fetcher
	// Make are the make entries (aliases makers and todo; one object or an
	// array in the file). At least one is required.
	Make []Maker
}

// Fetcher is one entry of a rule's fetch[].
type Fetcher struct {
	// Path locates the entry as the file wrote it, for messages:
	// "watchers[0].rules[1].fetch[0]", with the alias fetchers if the file
	// used it.
	Path string
	// URL is url, a pattern. Required.
	URL string
	// Returns is returns, the namespace of the result's variables
	// (${returns.key}). Required, a word (^\w+$), and distinct among the
	// fetchers of a rule.
	Returns string
	// Raw is escape: false. By default (escape: true, Raw false) each
	// variable's value is escaped for the part of the URL it lands in;
	// Raw inserts the values as they are, as resc did.
	Raw bool
	// Settings are the fetch settings of this fetcher: the top-level fetch
	// settings, with the keys this entry gives (timeout_ms, retries,
	// max_body_bytes, backoff_min_ms, backoff_max_ms, breaker_failures,
	// breaker_open_ms, breaker_half_open_requests) overriding them. Load
	// fills it in; the zero value (a Fetcher built by hand) means the fetch
	// client's own settings.
	Settings FetchSettings
}

// Maker is one make entry of a rule.
type Maker struct {
	// Index is the position in make[] (0 for a single object), for messages.
	Index int
	// Path locates the entry as the file wrote it, for messages:
	// "watchers[0].rules[1].make" for a single object, "...make[2]" in an
	// array, with the alias the file used (todo, makers) if any.
	Path string
	// Name is name, optional, for documentation and logs.
	Name string
	// Task is task, a pattern; default "${input_task}". Given, it must not
	// be empty.
	Task string
	// Queue is queue, a pattern. Required.
	Queue string
	// Set is set, a pattern; empty (set omitted) means no deduplication. An
	// empty set in the file is a problem.
	Set string
}
