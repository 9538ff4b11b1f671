using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace RolloutGate.Core.Runbooks;

/// <summary>
/// Refuses YAML nested deeper than <see cref="MaxDepth"/> lists and mappings, as a syntax error at the line that opens
/// the level too many. YamlDotNet builds its node tree by recursion, one call per level, so a file of nested brackets
/// (<c>[[[[…</c>, 100 KB of them fits well under the file size limit) overflowed the stack: an uncatchable crash of the
/// service, whose loader re-reads the folder every two seconds, and of <c>runbooks validate</c>. The parser's events
/// come one at a time without recursion, so counting them here stops the file before the tree is built.
/// </summary>
internal sealed class YamlDepthLimit(IParser parser) : IParser
{
    /// <summary>A runbook nests at most eight levels (spec.preDeploy.checks[0].freeze.dates[0]); a hundred is not a runbook.</summary>
    public const int MaxDepth = 100;

    private int depth;

    public ParsingEvent? Current => parser.Current;

    public bool MoveNext()
    {
        if (!parser.MoveNext())
        {
            return false;
        }

        switch (parser.Current)
        {
            case MappingStart or SequenceStart when ++depth > MaxDepth:
                throw new YamlException(parser.Current.Start, parser.Current.End,
                    $"lists and mappings are nested more than {MaxDepth} levels deep here; a runbook needs fewer than ten (is a [ or {{ never closed?)");
            case MappingEnd or SequenceEnd:
                depth--;
                break;
        }

        return true;
    }
}
