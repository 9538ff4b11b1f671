namespace RolloutGate.Core.Runbooks;

/// <summary>
/// Rules that span files: one service and environment is governed by one runbook, and one runbook name belongs to one
/// file (versions and sha256 are recorded per name). Two files claiming either would make the gate's answer depend on
/// which file happened to load first.
/// </summary>
public static class RunbookConflicts
{
    /// <summary>
    /// The conflicts among valid runbooks, in the given order: the first file to claim a service+environment or a
    /// name keeps it and each later claim is an error against the later file, at the line of its <c>metadata.name</c>
    /// or its <c>spec.service</c>.
    /// </summary>
    public static IReadOnlyList<RunbookError> Find(IEnumerable<(string File, Runbook Runbook)> runbooks)
    {
        var errors = new List<RunbookError>();
        var governed = new Dictionary<(string Service, string Environment), string>();
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (file, runbook) in runbooks)
        {
            if (!names.TryAdd(runbook.Name, file))
            {
                errors.Add(new RunbookError(file, runbook.NameLine, $"runbook name '{runbook.Name}' is already used by {names[runbook.Name]}; each runbook needs its own metadata.name"));
            }

            foreach (var environment in runbook.Environments)
            {
                if (!governed.TryAdd((runbook.Service, environment), file))
                {
                    errors.Add(new RunbookError(file, runbook.ServiceLine, $"service '{runbook.Service}' in environment '{environment}' is already governed by {governed[(runbook.Service, environment)]}; one runbook per service and environment"));
                }
            }
        }

        return errors;
    }
}
