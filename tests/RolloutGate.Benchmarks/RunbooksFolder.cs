namespace RolloutGate.Benchmarks;

/// <summary>
/// A benchmark's temporary runbooks folder, deleted when disposed. Declared before the host that reads it, it outlives
/// the host (using declarations are disposed in reverse order): deleted under a running host, the runbook loader's next
/// poll finds every file gone, warns about each and audits its removal while the host stops.
/// </summary>
internal sealed class RunbooksFolder : IDisposable
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("rg-bench-runbooks-").FullName;

    public Task WriteAsync(string file, string yaml) => File.WriteAllTextAsync(Path.Combine(Folder, file), yaml);

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}
