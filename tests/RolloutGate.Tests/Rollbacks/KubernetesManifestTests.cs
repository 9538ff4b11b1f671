using RolloutGate.Core.Runbooks;
using YamlDotNet.RepresentationModel;

namespace RolloutGate.Tests.Rollbacks;

/// <summary>deploy/kubernetes/rolloutgate.yaml: valid YAML, least-privilege RBAC for the rollback actions, a hardened pod.</summary>
public sealed class KubernetesManifestTests
{
    private static readonly IReadOnlyList<YamlMappingNode> Documents = Load();

    private static IReadOnlyList<YamlMappingNode> Load()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "RolloutGate.sln")))
        {
            directory = directory.Parent;
        }

        var path = Path.Combine(directory?.FullName ?? throw new InvalidOperationException("RolloutGate.sln not found above the test binaries"),
            "deploy", "kubernetes", "rolloutgate.yaml");
        var stream = new YamlStream();
        using var reader = new StreamReader(path);
        stream.Load(reader);
        return [.. stream.Documents.Select(d => (YamlMappingNode)d.RootNode)];
    }

    private static YamlMappingNode Single(string kind) =>
        Assert.Single(Documents, d => Text(d, "kind") == kind);

    private static string? Text(YamlNode node, params string[] path)
    {
        foreach (var key in path)
        {
            if (node is not YamlMappingNode mapping || !mapping.Children.TryGetValue(new YamlScalarNode(key), out var child))
            {
                return null;
            }

            node = child;
        }

        return (node as YamlScalarNode)?.Value;
    }

    private static YamlNode Node(YamlNode node, params string[] path) =>
        path.Aggregate(node, (current, key) => ((YamlMappingNode)current).Children[new YamlScalarNode(key)]);

    private static string[] Strings(YamlNode node) => [.. ((YamlSequenceNode)node).Children.Select(c => ((YamlScalarNode)c).Value!)];

    [Fact]
    public void Manifest_EveryDocument_HasApiVersionKindAndName()
    {
        Assert.All(Documents, d =>
        {
            Assert.NotNull(Text(d, "apiVersion"));
            Assert.NotNull(Text(d, "kind"));
            Assert.NotNull(Text(d, "metadata", "name"));
        });
    }

    [Fact]
    public void ClusterRole_GrantsExactlyGetAndPatchOnTheRollbackResourcesAndListOnDestinationRules()
    {
        var rules = ((YamlSequenceNode)Node(Single("ClusterRole"), "rules")).Children
            .SelectMany(rule => Strings(Node(rule, "apiGroups")).SelectMany(group => Strings(Node(rule, "resources"))
                .Select(resource => $"{group}/{resource}: {string.Join(",", Strings(Node(rule, "verbs")).Order(StringComparer.Ordinal))}")))
            .Order(StringComparer.Ordinal);

        Assert.Equal(
            [
                "argoproj.io/rollouts/status: get,patch",
                "argoproj.io/rollouts: get,patch",
                "gateway.networking.k8s.io/httproutes: get,patch",
                "networking.istio.io/destinationrules: list",
                "networking.istio.io/virtualservices: get,patch",
                "policy.linkerd.io/httproutes: get,patch",
                "split.smi-spec.io/trafficsplits: get,patch",
            ],
            rules);
        Assert.DoesNotContain(Documents, d => Text(d, "kind") is "Role" or "ClusterRoleBinding");
    }

    [Fact]
    public void RoleBinding_BindsTheClusterRoleToTheServiceAccount()
    {
        var binding = Single("RoleBinding");
        var account = Single("ServiceAccount");

        Assert.Equal(Text(Single("ClusterRole"), "metadata", "name"), Text(binding, "roleRef", "name"));
        Assert.Equal("ClusterRole", Text(binding, "roleRef", "kind"));
        var subject = Assert.Single(((YamlSequenceNode)Node(binding, "subjects")).Children);
        Assert.Equal("ServiceAccount", Text(subject, "kind"));
        Assert.Equal(Text(account, "metadata", "name"), Text(subject, "name"));
        Assert.Equal(Text(account, "metadata", "namespace"), Text(subject, "namespace"));
    }

    [Fact]
    public void Deployment_IsNonRootReadOnlyWithProbesSecretsAndRunbooks()
    {
        var deployment = Single("Deployment");
        var pod = Node(deployment, "spec", "template", "spec");
        var container = Assert.Single(((YamlSequenceNode)Node(pod, "containers")).Children);

        Assert.Equal(Text(Single("ServiceAccount"), "metadata", "name"), Text(pod, "serviceAccountName"));
        Assert.Equal("true", Text(pod, "securityContext", "runAsNonRoot"));
        Assert.Equal("true", Text(container, "securityContext", "readOnlyRootFilesystem"));
        Assert.Equal("false", Text(container, "securityContext", "allowPrivilegeEscalation"));
        Assert.Equal("/readyz", Text(container, "readinessProbe", "httpGet", "path"));
        Assert.Equal("/healthz", Text(container, "livenessProbe", "httpGet", "path"));

        var secretName = Text(((YamlSequenceNode)Node(container, "envFrom")).Children[0], "secretRef", "name");
        var secretKeys = ((YamlMappingNode)Node(Single("Secret"), "stringData")).Children.Keys.Select(k => ((YamlScalarNode)k).Value);
        Assert.Equal(Text(Single("Secret"), "metadata", "name"), secretName);
        Assert.Contains("ConnectionStrings__RolloutGate", secretKeys);

        var env = ((YamlSequenceNode)Node(container, "env")).Children.ToDictionary(e => Text(e, "name")!, e => Text(e, "value"));
        var runbooksMount = ((YamlSequenceNode)Node(container, "volumeMounts")).Children.Single(m => Text(m, "name") == "runbooks");
        Assert.Equal(Text(runbooksMount, "mountPath"), env["RolloutGate__RunbooksPath"]);
        var runbooksVolume = ((YamlSequenceNode)Node(pod, "volumes")).Children.Single(v => Text(v, "name") == "runbooks");
        Assert.Equal(Text(Single("ConfigMap"), "metadata", "name"), Text(runbooksVolume, "configMap", "name"));
    }

    [Fact]
    public void ConfigMap_Runbooks_AreValid()
    {
        var data = (YamlMappingNode)Node(Single("ConfigMap"), "data");

        Assert.All(data.Children, file =>
        {
            var result = RunbookParser.Parse(((YamlScalarNode)file.Value).Value!, ((YamlScalarNode)file.Key).Value!);
            Assert.Empty(result.Errors);
        });
    }

    [Fact]
    public void Service_TargetsTheDeploymentsPods()
    {
        var selector = Node(Single("Service"), "spec", "selector");
        var labels = Node(Single("Deployment"), "spec", "template", "metadata", "labels");

        Assert.Equal(Text(labels, "app.kubernetes.io/name"), Text(selector, "app.kubernetes.io/name"));
    }
}
