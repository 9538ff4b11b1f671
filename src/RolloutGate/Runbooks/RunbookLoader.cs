using System.Collections.Immutable;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage;
using Microsoft.Extensions.Options;
using RolloutGate.Audit;
using RolloutGate.Cli;
using RolloutGate.Core.Runbooks;
using RolloutGate.Infrastructure;
using RolloutGate.Infrastructure.Database;

namespace RolloutGate.Runbooks;

/// <summary>
/// Loads the runbooks folder at start-up and re-reads it every <see cref="ReloadInterval"/> (polling by content hash,
/// which also works where file-change notifications do not, such as mounted ConfigMaps). Each distinct valid content
/// is stored once as a runbook version; an invalid edit is logged and audited and the last good version stays in force.
/// The version each file put in force is recorded (table runbook_files), so a replica started while a file is invalid
/// serves the same last good version as one that kept it in memory; a removed file's record is dropped.
/// </summary>
public sealed partial class RunbookLoader(
    RunbookCatalog catalog,
    IServiceScopeFactory scopes,
    AuditTrail audit,
    IOptions<RolloutGateOptions> options,
    TimeProvider time,
    DatabaseOutageLog outage,
    ILogger<RunbookLoader> logger) : BackgroundService
{
    public static readonly TimeSpan ReloadInterval = TimeSpan.FromSeconds(2);

    /// <summary>Content hashes already judged per file, so an unchanged invalid file is reported once, not every poll.</summary>
    private readonly Dictionary<string, string> seen = new(StringComparer.Ordinal);

    /// <summary>
    /// Files refused only because a file in force already claimed their service and environment, or their name, with the
    /// runbook each holds. Such a file is judged again, unchanged, once nothing in force claims what it does any more (the
    /// other file removed, or edited to govern something else), as a restart would load it: else that service stayed
    /// ungoverned (422) until someone touched the refused file.
    /// </summary>
    private readonly Dictionary<string, Runbook> outclaimed = new(StringComparer.Ordinal);

    /// <summary>One scan at a time: the timer and an explicit <see cref="ScanAsync"/> (tests, a reload) never interleave.</summary>
    private readonly SemaphoreSlim scanning = new(1, 1);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        // The first scan completes before the host serves requests, so no webhook meets an empty catalog.
        await ScanAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    /// <summary>A scan every <see cref="ReloadInterval"/> after StartAsync's; stopped, it ends without an exception.</summary>
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        outage.RunEveryAsync("Runbook scan", ReloadInterval, time, ScanAsync, ex => LogScanFailed(logger, ex), stoppingToken, roundAtOnce: false);

    public async Task ScanAsync(CancellationToken cancellationToken)
    {
        await scanning.WaitAsync(cancellationToken);
        try
        {
            // Begun, a scan runs to its end and is recorded whole, even if the host stops meanwhile. Cut off in its
            // transaction (behind other writers of the audit chain, say), it left a stored version that no runbook.loaded
            // event announces, and none ever would (the version is not inserted again); it lost its runbook.removed events
            // for good (after a restart a removed file is simply absent); and EF logged the cancelled savepoint as an
            // error. It reads a folder and writes a few rows: the database's own timeouts bound it.
            await ScanOnceAsync(CancellationToken.None);
        }
        finally
        {
            scanning.Release();
        }
    }

    public override void Dispose()
    {
        scanning.Dispose();
        base.Dispose();
    }

    private async Task ScanOnceAsync(CancellationToken cancellationToken)
    {
        // A relative folder is read from where the service was started, as the CLI's paths are: dotnet run starts it in
        // src/RolloutGate, and the default "runbooks" means the repository's runbooks/ (CONTRACT sections 1 and 2).
        var folder = CommandPaths.Resolve(options.Value.RunbooksPath, Environment.GetEnvironmentVariable);
        var files = Directory.Exists(folder) ? RunbookFile.InFolder(folder) : [];
        if (!Directory.Exists(folder) && !catalog.IsLoaded)
        {
            LogFolderMissing(logger, folder);
        }

        var current = catalog.ByFile;
        var next = current.RemoveRange(current.Keys.Where(file => !files.Contains(file)));
        var audits = new List<AuditEntry>();
        foreach (var removed in current.Keys.Where(file => !files.Contains(file)))
        {
            LogRemoved(logger, removed, current[removed].Runbook.Name);
            audits.Add(new AuditEntry(AuditEventTypes.RunbookRemoved, null, current[removed].Runbook.Service, null,
                new { file = removed, name = current[removed].Runbook.Name }));
        }

        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<RolloutGateDbContext>();
        // The versions a scan stores commit with its audit events, in one transaction begun at its first write (a scan that
        // finds nothing new writes nothing): a version is never on record without the runbook.loaded event that announces
        // it. What the scan judged is remembered only once that has committed, so a scan that fails is judged again, whole.
        var judged = new Dictionary<string, string>(StringComparer.Ordinal);
        var claims = new Dictionary<string, Runbook?>(StringComparer.Ordinal);
        IDbContextTransaction? transaction = null;
        // Every file this replica judged that is gone, in force or not: its last good version is forgotten, so an
        // invalid file put back under its name later does not bring the removed runbook back.
        var gone = seen.Keys.Union(current.Keys).Where(file => !files.Contains(file)).ToList();
        try
        {
            if (gone.Count > 0)
            {
                transaction ??= await db.Database.BeginTransactionAsync(cancellationToken);
                var names = gone.Select(Path.GetFileName).ToList();
                await db.Database.ExecuteSqlAsync($"DELETE FROM runbook_files WHERE file = ANY({names})", cancellationToken);
            }

            // At start-up nothing is in force yet, and the first file to claim a service keeps it: the files on record as in
            // force (on this replica before it stopped, or on another) go first, so a file refused for claiming what one of
            // them governs is refused again, as on the replicas still running, instead of taking the service over because
            // its name sorts first. Outclaimed files go last, held against what this scan put in force. Otherwise in order.
            var recorded = catalog.IsLoaded ? [] : await RecordedFilesAsync(db, cancellationToken);
            int Turn(string file) => recorded.Contains(Path.GetFileName(file)) ? 0 : outclaimed.ContainsKey(file) ? 2 : 1;
            foreach (var file in files.OrderBy(Turn))
            {
                var display = Path.GetRelativePath(CommandPaths.BaseFolder(Environment.GetEnvironmentVariable), file);
                var (bytes, unreadable) = await RunbookFile.ReadAsync(file, display, cancellationToken);
                // A file that cannot be read is judged like an invalid one (its last good version kept, the rejection
                // logged and audited once), remembered by its reason in place of a hash until that changes.
                var sha = bytes is null ? null : RunbookFile.Sha256Of(bytes);
                var judgement = sha ?? unreadable!.Reason;
                if (seen.TryGetValue(file, out var before) && before == judgement
                    && !(outclaimed.TryGetValue(file, out var waiting) && !ConflictsWithInForce(next, file, display, waiting).Any()))
                {
                    continue;
                }

                judged[file] = judgement;
                var content = bytes is null ? "" : System.Text.Encoding.UTF8.GetString(bytes);
                var parsed = bytes is null ? new RunbookParseResult(null, [unreadable!]) : RunbookParser.Parse(content, display);
                var errors = parsed.Errors.ToList();
                if (parsed.Runbook is { } runbook)
                {
                    errors.AddRange(ConflictsWithInForce(next, file, display, runbook));
                }

                if (errors.Count > 0 || parsed.Runbook is null)
                {
                    // Valid by itself, refused for what another file claims: looked at again when those claims move.
                    claims[file] = parsed.Errors.Count == 0 ? parsed.Runbook : null;
                    // Started (or the file first seen) while it is invalid: the version it last put in force, on any replica.
                    if (!next.ContainsKey(file) && await StoredLastGoodAsync(db, file, display, next, cancellationToken) is { } stored)
                    {
                        next = next.SetItem(file, stored);
                        LogStoredInForce(logger, stored.Runbook.Name, stored.Runbook.Version, stored.Sha256[..12], display);
                    }

                    var keptVersion = next.TryGetValue(file, out var kept) ? kept.Runbook.Version : (int?)null;
                    foreach (var error in errors)
                    {
                        if (kept is null)
                        {
                            LogInvalidNothingKept(logger, error.ToString());
                        }
                        else
                        {
                            LogInvalid(logger, error.ToString(), kept.Runbook.Name, kept.Runbook.Version);
                        }
                    }

                    audits.Add(new AuditEntry(AuditEventTypes.RunbookRejected, null, kept?.Runbook.Service, null, new
                    {
                        file = display,
                        sha256 = sha,
                        errors = errors.Select(e => new { e.Line, e.Reason }).ToList(),
                        keptVersion,
                    }));
                    continue;
                }

                transaction ??= await db.Database.BeginTransactionAsync(cancellationToken);
                var loaded = await StoreVersionAsync(db, parsed.Runbook, sha!, content, display, audits, cancellationToken);
                await db.Database.ExecuteSqlAsync($"""
                    INSERT INTO runbook_files (file, runbook_version_id, in_force_since)
                    VALUES ({Path.GetFileName(file)}, {loaded.VersionId}, {time.GetUtcNow()})
                    ON CONFLICT (file) DO UPDATE SET runbook_version_id = EXCLUDED.runbook_version_id, in_force_since = EXCLUDED.in_force_since
                    WHERE runbook_files.runbook_version_id <> EXCLUDED.runbook_version_id
                    """, cancellationToken);
                next = next.SetItem(file, loaded);
                claims[file] = null;
                LogLoaded(logger, loaded.Runbook.Name, loaded.Runbook.Version, loaded.Sha256[..12], display);
                foreach (var warning in parsed.Warnings)
                {
                    LogLoadedWithWarning(logger, loaded.Runbook.Name, loaded.Runbook.Version, warning.ToString());
                }
            }

            if (audits.Count > 0)
            {
                transaction ??= await db.Database.BeginTransactionAsync(cancellationToken);
                await audit.AppendAsync(db, audits, cancellationToken);
            }

            if (transaction is not null)
            {
                await transaction.CommitAsync(cancellationToken);
            }
        }
        finally
        {
            if (transaction is not null)
            {
                await transaction.DisposeAsync();
            }
        }

        gone.ForEach(file => seen.Remove(file));
        gone.ForEach(file => outclaimed.Remove(file));
        foreach (var (file, sha) in judged)
        {
            seen[file] = sha;
        }

        foreach (var (file, runbook) in claims)
        {
            if (runbook is null)
            {
                outclaimed.Remove(file);
            }
            else
            {
                outclaimed[file] = runbook;
            }
        }

        catalog.Publish(next, Directory.Exists(folder) ? null : folder);
    }

    private async Task<LoadedRunbook> StoreVersionAsync(
        RolloutGateDbContext db, Runbook runbook, string sha, string content, string display, List<AuditEntry> audits, CancellationToken cancellationToken)
    {
        var inserted = await db.Database.SqlQuery<long>($"""
            INSERT INTO runbook_versions (name, version, sha256, content, file_path, loaded_at)
            VALUES ({runbook.Name}, {runbook.Version}, {sha}, {content}, {display}, {time.GetUtcNow()})
            ON CONFLICT (name, sha256) DO NOTHING
            RETURNING id AS "Value"
            """).ToListAsync(cancellationToken);
        long id;
        if (inserted.Count == 1)
        {
            id = inserted[0];
            // CONTRACT section 3: the version is bumped with every change. One that was not now names two runbooks, in
            // every deployment, report and decision that shows it: said, though the sha256 keeps them apart.
            var sameNumber = await db.RunbookVersions.AsNoTracking()
                .Where(v => v.Name == runbook.Name && v.Version == runbook.Version && v.Id != id)
                .OrderByDescending(v => v.Id).Select(v => v.Sha256).FirstOrDefaultAsync(cancellationToken);
            if (sameNumber is not null)
            {
                LogVersionNotBumped(logger, runbook.Name, runbook.Version, display, sameNumber[..12], sha[..12]);
            }

            audits.Add(new AuditEntry(AuditEventTypes.RunbookLoaded, null, runbook.Service, null,
                new { name = runbook.Name, version = runbook.Version, sha256 = sha, file = display }));
        }
        else
        {
            id = await db.RunbookVersions.Where(v => v.Name == runbook.Name && v.Sha256 == sha).Select(v => v.Id).SingleAsync(cancellationToken);
        }

        return new LoadedRunbook(runbook, id, sha, display);
    }

    /// <summary>The file names runbook_files records as having a version in force.</summary>
    private static async Task<HashSet<string>> RecordedFilesAsync(RolloutGateDbContext db, CancellationToken cancellationToken) =>
        (await db.Database.SqlQuery<string>($"SELECT file AS \"Value\" FROM runbook_files").ToListAsync(cancellationToken)).ToHashSet(StringComparer.Ordinal);

    /// <summary>Files already in force keep their claims; <paramref name="file"/> is judged against them.</summary>
    private static IEnumerable<RunbookError> ConflictsWithInForce(
        ImmutableDictionary<string, LoadedRunbook> next, string file, string display, Runbook runbook)
    {
        var inForce = next.Where(pair => pair.Key != file).Select(pair => (pair.Value.File, pair.Value.Runbook));
        return RunbookConflicts.Find(inForce.Append((display, runbook))).Where(error => error.File == display);
    }

    /// <summary>
    /// The version <paramref name="file"/> last put in force (recorded in runbook_files by whichever replica loaded it),
    /// or null when there is none, it no longer parses, or it conflicts with the files already in force.
    /// </summary>
    private async Task<LoadedRunbook?> StoredLastGoodAsync(
        RolloutGateDbContext db, string file, string display, ImmutableDictionary<string, LoadedRunbook> next, CancellationToken cancellationToken)
    {
        var stored = await db.RunbookVersions.FromSql($"""
            SELECT v.* FROM runbook_versions v JOIN runbook_files f ON f.runbook_version_id = v.id
            WHERE f.file = {Path.GetFileName(file)}
            """).AsNoTracking().SingleOrDefaultAsync(cancellationToken);
        if (stored is null)
        {
            return null;
        }

        var parsed = RunbookParser.Parse(stored.Content, display);
        var problems = parsed.Errors.Select(error => error.Reason).ToList();
        if (parsed.Runbook is { } runbook)
        {
            problems.AddRange(ConflictsWithInForce(next, file, display, runbook).Select(error => error.Reason));
        }

        if (parsed.Runbook is null || problems.Count > 0)
        {
            LogStoredUnusable(logger, stored.Name, stored.Version, display, string.Join("; ", problems));
            return null;
        }

        return new LoadedRunbook(parsed.Runbook, stored.Id, stored.Sha256, display);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Runbook {Name} v{Version} ({Sha}) in force from {File}")]
    private static partial void LogLoaded(ILogger logger, string name, int version, string sha, string file);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Runbook {Name} v{Version} in {File} changed ({Before} to {After}) without a new metadata.version: bump it with every change, so that v{Version} names one runbook")]
    private static partial void LogVersionNotBumped(ILogger logger, string name, int version, string file, string before, string after);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Runbook {Name} v{Version} is in force, but: {Warning}")]
    private static partial void LogLoadedWithWarning(ILogger logger, string name, int version, string warning);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Runbook rejected: {Error}; the last good version, {Name} v{KeptVersion}, stays in force")]
    private static partial void LogInvalid(ILogger logger, string error, string name, int keptVersion);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Runbook rejected: {Error}; the file has no last good version, so it governs nothing until it is fixed")]
    private static partial void LogInvalidNothingKept(ILogger logger, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Runbook {Name} v{Version} ({Sha}) in force from the stored last good version: {File} is invalid")]
    private static partial void LogStoredInForce(ILogger logger, string name, int version, string sha, string file);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The stored last good version of {File}, runbook {Name} v{Version}, cannot be put in force: {Reason}")]
    private static partial void LogStoredUnusable(ILogger logger, string name, int version, string file, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Runbook file {File} was removed; runbook {Name} no longer governs new deployments")]
    private static partial void LogRemoved(ILogger logger, string file, string name);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The runbooks folder {Folder} does not exist; no service is governed")]
    private static partial void LogFolderMissing(ILogger logger, string folder);

    [LoggerMessage(Level = LogLevel.Error, Message = "Runbook scan failed; will retry")]
    private static partial void LogScanFailed(ILogger logger, Exception exception);
}
