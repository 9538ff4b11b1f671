using System.Text;
using RolloutGate.Core.Runbooks;

namespace RolloutGate.Runbooks;

/// <summary>
/// Reads a runbook file for the service's loader and for <c>runbooks validate</c>, or says why it cannot, as an error at
/// the file's line 1. Not everything named *.yaml in a folder can be read: a file the service may not open (an
/// UnauthorizedAccessException, which the loader did not catch: the service failed to start, and every later scan failed
/// whole, so no other runbook's edit was loaded), a symbolic link whose target is gone, a FIFO (whose open waits for a
/// writer: start-up, the scan and <c>runbooks validate</c> hung), a device such as /dev/zero (whose read never ends), a
/// folder named *.yaml, or a file larger than <see cref="RunbookParser.MaxFileBytes"/> (of which no more is read).
/// .NET cannot tell a FIFO or a device from a file without opening it, but neither has a length, so a file of length 0 is
/// not opened: there is no runbook in it either way.
/// </summary>
public static class RunbookFile
{
    private const string EmptyReason =
        "the file is empty, or not a regular file (a FIFO or a device is not read: its read may never end); expected a runbook (apiVersion, kind, metadata, spec)";

    private const string FolderReason =
        "it is a folder, not a file; runbooks are read from the files directly in the runbooks folder, not from its subfolders";

    /// <summary>
    /// The runbook files of <paramref name="folder"/> in ordinal order: every entry named *.yaml or *.yml, folders and
    /// other entries included, so that each is one error (<see cref="ReadAsync"/>) rather than passed over in silence.
    /// </summary>
    public static List<string> InFolder(string folder) =>
        Directory.EnumerateFileSystemEntries(folder)
            .Where(path => path.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) || path.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>The file's bytes, or null and the error that says why it cannot be read.</summary>
    public static async Task<(byte[]? Bytes, RunbookError? Unreadable)> ReadAsync(string path, string display, CancellationToken cancellationToken)
    {
        try
        {
            // Followed if it is a link: a folder named *.yaml (a mkdir by mistake, a volume mounted over a file's name) is
            // refused like a file that cannot be read, not passed over, which took its runbook out of force as if removed.
            if (Directory.Exists(path))
            {
                return (null, new RunbookError(display, 1, FolderReason));
            }

            var target = new FileInfo(path);
            if (target.LinkTarget is not null && File.ResolveLinkTarget(path, returnFinalTarget: true) is { } resolved)
            {
                if (!resolved.Exists)
                {
                    return (null, new RunbookError(display, 1, $"cannot read the file: it is a symbolic link to {resolved.FullName}, which does not exist"));
                }

                target = new FileInfo(resolved.FullName);
            }

            if (target.Length == 0)
            {
                return (null, new RunbookError(display, 1, EmptyReason));
            }

            return await ReadAtMostAsync(path, display, target.Length, cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, new RunbookError(display, 1, $"cannot read the file: {ex.Message}"));
        }
    }

    /// <summary>
    /// The file read by <see cref="ReadAsync"/> and parsed, or the error that says why it cannot be read; for the commands.
    /// The runbook's sha256 is that of the file's bytes, as sha256sum and the service's loader compute it: the text's
    /// differs for a file that is not all UTF-8, whose invalid bytes the decoding replaces with U+FFFD.
    /// </summary>
    public static async Task<RunbookParseResult> ParseAsync(string path, string display)
    {
        var (bytes, unreadable) = await ReadAsync(path, display, CancellationToken.None);
        if (bytes is null)
        {
            return new RunbookParseResult(null, [unreadable!]);
        }

        var parsed = RunbookParser.Parse(Encoding.UTF8.GetString(bytes), display);
        return parsed.Runbook is { } runbook ? parsed with { Runbook = runbook with { Sha256 = Sha256Of(bytes) } } : parsed;
    }

    /// <summary>Lowercase hex SHA-256 of a runbook file's bytes: the fingerprint recorded with each of its versions.</summary>
    public static string Sha256Of(byte[] bytes) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));

    /// <summary>
    /// The file's bytes when there are at most <see cref="RunbookParser.MaxFileBytes"/> of them; otherwise the error that
    /// refuses it, having read one byte more than the limit. A log of gigabytes saved under a .yaml name was read whole,
    /// at every scan (beyond 2 GB .NET refuses to, and the error said only that the file was too long).
    /// </summary>
    private static async Task<(byte[]? Bytes, RunbookError? Unreadable)> ReadAtMostAsync(
        string path, string display, long length, CancellationToken cancellationToken)
    {
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, useAsync: true);
        // Sized by the length seen, but read to the limit: the file may have grown since.
        var buffer = new byte[Math.Min(length, RunbookParser.MaxFileBytes) + 1];
        var read = await stream.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, cancellationToken);
        if (read == buffer.Length && buffer.Length <= RunbookParser.MaxFileBytes)
        {
            Array.Resize(ref buffer, RunbookParser.MaxFileBytes + 1);
            read += await stream.ReadAtLeastAsync(buffer.AsMemory(read), buffer.Length - read, throwOnEndOfStream: false, cancellationToken);
        }

        return read > RunbookParser.MaxFileBytes
            ? (null, RunbookParser.TooLarge(display, buffer, Math.Max(length, read)))
            : (buffer[..read], null);
    }
}
