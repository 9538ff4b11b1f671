using RolloutGate.Core.Runbooks;

namespace RolloutGate.Runbooks;

/// <summary>
/// Reads a runbook file for the service's loader and for <c>runbooks validate</c>, or says why it cannot, as an error at
/// the file's line 1. Not everything named *.yaml in a folder can be read: a file the service may not open (an
/// UnauthorizedAccessException, which the loader did not catch: the service failed to start, and every later scan failed
/// whole, so no other runbook's edit was loaded), a symbolic link whose target is gone, a FIFO (whose open waits for a
/// writer: start-up, the scan and <c>runbooks validate</c> hung) or a device such as /dev/zero (whose read never ends).
/// .NET cannot tell a FIFO or a device from a file without opening it, but neither has a length, so a file of length 0 is
/// not opened: there is no runbook in it either way.
/// </summary>
public static class RunbookFile
{
    private const string EmptyReason =
        "the file is empty, or not a regular file (a FIFO or a device is not read: its read may never end); expected a runbook (apiVersion, kind, metadata, spec)";

    /// <summary>The file's bytes, or null and the error that says why it cannot be read.</summary>
    public static async Task<(byte[]? Bytes, RunbookError? Unreadable)> ReadAsync(string path, string display, CancellationToken cancellationToken)
    {
        try
        {
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

            return (await File.ReadAllBytesAsync(path, cancellationToken), null);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return (null, new RunbookError(display, 1, $"cannot read the file: {ex.Message}"));
        }
    }
}
