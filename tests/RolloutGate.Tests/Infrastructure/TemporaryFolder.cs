namespace RolloutGate.Tests.Infrastructure;

/// <summary>
/// A folder of the test's own under the system's temporary folder, removed with all it holds when disposed, so that a
/// test run leaves nothing behind in /tmp (a CI runner that is not wiped between runs fills up otherwise).
/// </summary>
public sealed class TemporaryFolder(string prefix) : IDisposable
{
    public string Folder { get; } = Directory.CreateTempSubdirectory(prefix).FullName;

    public void Dispose()
    {
        if (Directory.Exists(Folder))
        {
            Directory.Delete(Folder, recursive: true);
        }
    }
}
