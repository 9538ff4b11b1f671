namespace RolloutGate.Tests.Infrastructure;

/// <summary>A runbooks folder of the test's own, so tests can edit, break and remove runbooks.</summary>
public sealed class TestRunbooks : IDisposable
{
    public TestRunbooks(params (string File, string Yaml)[] files)
    {
        Folder = Directory.CreateTempSubdirectory("rg-runbooks-").FullName;
        foreach (var (file, yaml) in files)
        {
            Write(file, yaml);
        }
    }

    public string Folder { get; }

    public string PathOf(string file) => System.IO.Path.Combine(Folder, file);

    public void Write(string file, string yaml) => File.WriteAllText(PathOf(file), yaml);

    public void Dispose() => Directory.Delete(Folder, recursive: true);

    /// <summary>The kinds of runbook file that cannot be read, for <see cref="MakeUnreadable"/>.</summary>
    public const string NotPermitted = "not permitted", Fifo = "fifo", DanglingLink = "dangling link", Subfolder = "folder", TooLarge = "too large";

    /// <summary>The length of a <see cref="TooLarge"/> file: a log written into the folder by mistake, beyond 2 GB.</summary>
    public const long TooLargeLength = 3L << 30;

    /// <summary>
    /// Replaces <paramref name="path"/> with a file the service cannot read: one it may not open, a FIFO (whose open waits
    /// for a writer), a symbolic link to nothing, a folder, or a file of <see cref="TooLargeLength"/> bytes (sparse: it
    /// takes no room on the disk, and reads as zeros).
    /// </summary>
    public static void MakeUnreadable(string path, string kind)
    {
        File.Delete(path);
        switch (kind)
        {
            case NotPermitted when Environment.IsPrivilegedProcess:
                // Root opens a file whatever its mode, but not a write-only kernel attribute (not empty: 4096 bytes).
                Assert.True(WriteOnlyAttribute is not null, "a write-only file under /sys/bus is needed to make a file root cannot read");
                File.CreateSymbolicLink(path, WriteOnlyAttribute);
                break;
            case NotPermitted:
                File.WriteAllText(path, Minimal());
                Assert.False(OperatingSystem.IsWindows(), "a file made unreadable by its Unix mode");
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(path, UnixFileMode.None);
                }

                break;
            case Fifo:
                using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", path))
                {
                    mkfifo.WaitForExit();
                    Assert.Equal(0, mkfifo.ExitCode);
                }

                break;
            case Subfolder:
                Directory.CreateDirectory(path);
                break;
            case TooLarge:
                using (var file = new FileStream(path, FileMode.CreateNew))
                {
                    file.SetLength(TooLargeLength);
                }

                break;
            default:
                File.CreateSymbolicLink(path, path + ".gone");
                break;
        }
    }

    /// <summary>
    /// A write-only kernel attribute that exists here: every bus has drivers_probe, and the cpu bus every Linux machine
    /// (a virtual machine without a PCI bus too); null where sysfs has none of them.
    /// </summary>
    private static readonly string? WriteOnlyAttribute =
        new[] { "/sys/bus/cpu/drivers_probe", "/sys/bus/platform/drivers_probe", "/sys/bus/pci/rescan" }.FirstOrDefault(File.Exists);

    /// <summary>A valid runbook with no pre-deploy checks, so <c>predeploy</c> answers on the built-in rules alone.</summary>
    public static string Minimal(string service = "checkout", int version = 1, string environments = "[production, staging]") => $"""
        apiVersion: rolloutgate/v1
        kind: Runbook
        metadata:
          name: {service}
          version: {version}
        spec:
          service: {service}
          environments: {environments}
          owner: U024BE7LH
          approvers: [U024BE7LH, U0G9QF9C6]
          decisionChannel: C0DECIDE01
          mesh:
            provider: istio
            namespace: shop
            workload: {service}
          watch:
            duration: 24h
            interval: 1m
            baseline: 24h
            metrics:
              - name: p95-latency
                preset: p95-latency
                maxIncrease: 20%
                max: 800ms
          rollback:
            mode: recommend
            approvalTimeout: 15m
            onTimeout: rollback
            action:
              istio:
                virtualService: {service}
                stableSubset: stable
        """;
}
