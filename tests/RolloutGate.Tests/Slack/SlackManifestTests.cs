using RolloutGate.Tests.Infrastructure;
using YamlDotNet.RepresentationModel;

namespace RolloutGate.Tests.Slack;

public sealed class SlackManifestTests
{
    [Fact]
    public void Manifest_AsksForChatWriteCommandsAndHistoryAndPointsAtTheSlackEndpoints()
    {
        var yaml = new YamlStream();
        yaml.Load(new StringReader(File.ReadAllText(TestPaths.RepositoryFile("deploy/slack/manifest.yaml"))));
        var root = (YamlMappingNode)Assert.Single(yaml.Documents).RootNode;

        var scopes = (YamlSequenceNode)root["oauth_config"]["scopes"]["bot"];
        Assert.Equal(["chat:write", "commands", "channels:history", "groups:history"], scopes.Children.Select(s => ((YamlScalarNode)s).Value));
        var command = (YamlMappingNode)((YamlSequenceNode)root["features"]["slash_commands"]).Children.Single();
        Assert.Equal("/rolloutgate", ((YamlScalarNode)command["command"]).Value);
        Assert.EndsWith("/slack/commands", ((YamlScalarNode)command["url"]).Value, StringComparison.Ordinal);
        Assert.EndsWith("/slack/interactions", ((YamlScalarNode)root["settings"]["interactivity"]["request_url"]).Value, StringComparison.Ordinal);
    }
}
