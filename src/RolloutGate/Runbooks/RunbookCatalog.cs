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
public sealed class RunbookCatalog : IReadinessCheck
{
    private readonly ConcurrentDictionary<long, Runbook> byVersionId = new();

    private volatile Snapshot current = new(ImmutableDictionary<string, LoadedRunbook>.Empty, Loaded: false, MissingFolder: null);

    public IReadOnlyCollection<LoadedRunbook> All => current.ByFile.Values.ToList();

    public bool IsLoaded => current.Loaded;

    /// <summary>The runbook governing a service in an environment, or null when none does.</summary>
    public LoadedRunbook? Find(string service, string environment) =>
        current.ByFile.Values.FirstOrDefault(loaded => loaded.Runbook.Governs(service, environment));

    /// <summary>
    /// The runbook version a deployment recorded, which governs it to the end even after the file changes or is removed
    /// (the watch keeps running). Stored versions were valid when stored, so parsing one again cannot fail unless the
    /// parser got stricter.
    /// </summary>
    public Runbook VersionOf(DeploymentRow deployment) =>
        current.ByFile.Values.FirstOrDefault(loaded => loaded.VersionId == deployment.RunbookVersionId) is { } inForce
            ? inForce.Runbook
            : StoredVersion(deployment);

    private Runbook StoredVersion(DeploymentRow deployment)
    {
        return byVersionId.GetOrAdd(deployment.RunbookVersionId, _ =>
        {
            var stored = deployment.RunbookVersion
                ?? throw new InvalidOperationException($"deployment {deployment.Id} was loaded without its runbook version");
            var parsed = RunbookParser.Parse(stored.Content, stored.FilePath);
            return parsed.Runbook ?? throw new InvalidOperationException(
                $"stored runbook version {stored.Name} v{stored.Version} no longer parses: {string.Join("; ", parsed.Errors)}");
        });
    }

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

    private sealed record Snapshot(ImmutableDictionary<string, LoadedRunbook> ByFile, bool Loaded, string? MissingFolder);
}
