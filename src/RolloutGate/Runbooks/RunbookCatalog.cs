using System.Collections.Concurrent;
using System.Collections.Immutable;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure.Database;
using RolloutGate.Operations;

namespace RolloutGate.Runbooks;

/// <summary>A runbook in force, with the stored version that deployments record.</summary>
public sealed record LoadedRunbook(Runbook Runbook, long VersionId, string Sha256, string File)
{
    public RunbookRef Ref => new(Runbook.Name, Runbook.Version, Sha256);
}

/// <summary>How a deployment names the runbook version that governed it (CONTRACT sections 4 and 5).</summary>
public sealed record RunbookRef(string Name, int Version, string Sha256);

/// <summary>
/// The runbooks in force, swapped atomically by <see cref="RunbookLoader"/>. Readers never see a half-loaded folder.
/// </summary>
public sealed class RunbookCatalog(TimeProvider time) : IReadinessCheck
{
    /// <summary>
    /// How long a stored version no longer in force stays parsed after its last use. Every edit of a runbook is a new
    /// version; a service that runs for months would otherwise keep every version it ever looked at.
    /// </summary>
    internal static readonly TimeSpan KeepUnused = TimeSpan.FromHours(1);

    private readonly ConcurrentDictionary<long, StoredRunbook> byVersionId = new();

    private volatile Snapshot current = new(ImmutableDictionary<string, LoadedRunbook>.Empty, Loaded: false, MissingFolder: null);

    public IReadOnlyCollection<LoadedRunbook> All => current.ByFile.Values.ToList();

    public bool IsLoaded => current.Loaded;

    /// <summary>The runbook governing a service in an environment, or null when none does.</summary>
    public LoadedRunbook? Find(string service, string environment) =>
        current.ByFile.Values.FirstOrDefault(loaded => loaded.Runbook.Governs(service, environment));

    /// <summary>
    /// The runbook version a deployment recorded, which governs it to the end even after the file changes or is removed
    /// (the watch keeps running). Stored versions were valid when stored, so parsing one again cannot fail unless the
    /// parser got stricter: then <see cref="StoredRunbookUnreadableException"/>, which callers that can do without the
    /// runbook catch.
    /// </summary>
    public Runbook VersionOf(DeploymentRow deployment) =>
        current.ByVersionId.TryGetValue(deployment.RunbookVersionId, out var inForce)
            ? inForce.Runbook
            : StoredVersion(deployment);

    /// <summary>
    /// <see cref="VersionOf"/>, or null when the stored version no longer parses: for pages that show a change whatever its
    /// runbook, and do with less without it.
    /// </summary>
    public Runbook? ReadableVersionOf(DeploymentRow deployment)
    {
        try
        {
            return VersionOf(deployment);
        }
        catch (StoredRunbookUnreadableException)
        {
            return null;
        }
    }

    /// <summary>
    /// A stored version, parsed once and kept while it is used (a running watch, its decisions, its dashboard page); parsing
    /// a new one first forgets those unused for <see cref="KeepUnused"/>, so the cache holds what was used lately, not
    /// every version ever used.
    /// </summary>
    private Runbook StoredVersion(DeploymentRow deployment)
    {
        var now = time.GetUtcNow();
        if (byVersionId.TryGetValue(deployment.RunbookVersionId, out var cached))
        {
            cached.LastUsed = now;
            return cached.Runbook;
        }

        var stored = deployment.RunbookVersion
            ?? throw new InvalidOperationException($"deployment {deployment.Id} was loaded without its runbook version");
        var parsed = RunbookParser.Parse(stored.Content, stored.FilePath);
        var runbook = parsed.Runbook ?? throw new StoredRunbookUnreadableException(
            $"stored runbook version {stored.Name} v{stored.Version} no longer parses: {string.Join("; ", parsed.Errors)}");
        foreach (var (versionId, unused) in byVersionId.Where(entry => now - entry.Value.LastUsed > KeepUnused))
        {
            byVersionId.TryRemove(new KeyValuePair<long, StoredRunbook>(versionId, unused));
        }

        return byVersionId.GetOrAdd(deployment.RunbookVersionId, new StoredRunbook(runbook) { LastUsed = now }).Runbook;
    }

    /// <summary>The stored versions (no longer in force) held parsed (tests look at it).</summary>
    internal IReadOnlyList<long> CachedVersions => [.. byVersionId.Keys.Order()];

    internal ImmutableDictionary<string, LoadedRunbook> ByFile => current.ByFile;

    /// <summary>Publishes what a scan found; <paramref name="missingFolder"/>, the folder it looked in, when that does not exist.</summary>
    internal void Publish(ImmutableDictionary<string, LoadedRunbook> byFile, string? missingFolder) =>
        current = new Snapshot(byFile, Loaded: true, missingFolder);

    /// <summary>Not ready before the first scan, nor while the runbooks folder does not exist: a misconfigured path governs nothing.</summary>
    public string? Problem() => current switch
    {
        { Loaded: false } => "runbooks not loaded yet",
        { MissingFolder: { } folder } => $"the runbooks folder {folder} does not exist (RolloutGate__RunbooksPath); no service is governed",
        _ => null,
    };

    private sealed record Snapshot(ImmutableDictionary<string, LoadedRunbook> ByFile, bool Loaded, string? MissingFolder)
    {
        /// <summary>
        /// The runbooks in force by their stored version, for <see cref="VersionOf"/>, which the decision channel asks for
        /// every audit event it announces, under the audit lock. Looking through every file's runbook each time (1,064 in
        /// the watch benchmark) took 24 ms of CPU alone, about 40 ms under the profiler, for each store batch of 500
        /// regressions when 5,000 watches regressed at one t (tests/RolloutGate.Benchmarks/README.md).
        /// </summary>
        public IReadOnlyDictionary<long, LoadedRunbook> ByVersionId { get; } =
            ByFile.Values.GroupBy(loaded => loaded.VersionId).ToDictionary(g => g.Key, g => g.First());
    }

    /// <summary>A parsed stored version and when it was last used (read and written by many threads, so kept as ticks).</summary>
    private sealed class StoredRunbook(Runbook runbook)
    {
        private long lastUsedTicks;

        public Runbook Runbook { get; } = runbook;

        public DateTimeOffset LastUsed
        {
            get => new(Interlocked.Read(ref lastUsedTicks), TimeSpan.Zero);
            set => Interlocked.Exchange(ref lastUsedTicks, value.UtcTicks);
        }
    }
}

/// <summary>
/// A deployment's stored runbook version no longer parses (an older RolloutGate accepted what this one refuses): what
/// <see cref="RunbookCatalog.VersionOf"/> throws then, so that a caller that can do without the runbook catches this case
/// and no other.
/// </summary>
public sealed class StoredRunbookUnreadableException(string message) : InvalidOperationException(message);
