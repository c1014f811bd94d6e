using System.Diagnostics.Metrics;
using System.Text.Json.Nodes;
using Dapo.Grains.Hosting;
using Dapo.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using YamlDotNet.RepresentationModel;

namespace Dapo.EndToEnd.Tests;

/// <summary>
/// deploy/k8s agrees with the silo (there is no Kubernetes here to apply it to): every setting a manifest passes is one
/// the silo accepts, with a valid value; labels, selectors and names agree; the probes and the autoscaler use what the
/// silo serves and exports.
/// </summary>
public sealed class KubernetesManifestTests
{
    private static readonly string Folder = Path.Combine(RepositoryPaths.Root, "deploy", "k8s");

    /// <summary>Every object of every manifest, as JSON (scalars as strings), with the file it came from.</summary>
    private static readonly List<(string File, JsonObject Object)> Objects = Directory.GetFiles(Folder, "*.yaml")
        .Where(f => Path.GetFileName(f) != "kustomization.yaml")
        .SelectMany(f =>
        {
            var stream = new YamlStream();
            using (var reader = new StreamReader(f)) stream.Load(reader);
            return stream.Documents.Select(d => (Path.GetFileName(f), (JsonObject)ToJson(d.RootNode)!));
        }).ToList();

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(c => KeyValuePair.Create(((YamlScalarNode)c.Key).Value!, ToJson(c.Value)))),
        YamlSequenceNode list => new JsonArray(list.Children.Select(ToJson).ToArray()),
        YamlScalarNode scalar => scalar.Value is null ? null : JsonValue.Create(scalar.Value),
        _ => throw new InvalidDataException($"unexpected YAML node {node.NodeType}"),
    };

    private static IEnumerable<JsonObject> OfKind(string kind) => Objects.Where(o => (string?)o.Object["kind"] == kind).Select(o => o.Object);

    private static string Name(JsonNode o) => (string)o["metadata"]!["name"]!;

    private static IEnumerable<JsonObject> Containers(JsonObject deployment) =>
        deployment["spec"]!["template"]!["spec"]!["containers"]!.AsArray().Select(c => c!.AsObject());

    [Fact]
    public void Kustomize_applies_every_manifest_and_every_object_is_in_the_namespace()
    {
        var kustomization = new YamlStream();
        using (var reader = new StreamReader(Path.Combine(Folder, "kustomization.yaml"))) kustomization.Load(reader);
        var listed = ToJson(kustomization.Documents[0].RootNode)!["resources"]!.AsArray().Select(r => (string)r!).Order();
        Assert.Equal(Objects.Select(o => o.File).Distinct().Order(), listed);
        var ns = Name(Assert.Single(OfKind("Namespace")));
        Assert.All(Objects.Where(o => (string?)o.Object["kind"] != "Namespace"), o => Assert.Equal(ns, (string?)o.Object["metadata"]!["namespace"]));
    }

    [Fact]
    public void Every_setting_a_silo_container_passes_is_one_the_silo_accepts_with_a_valid_value()
    {
        var secrets = OfKind("Secret").ToDictionary(Name, s => s["stringData"]!.AsObject());
        var deployments = OfKind("Deployment").ToList();
        Assert.Equal(2, deployments.Count);
        foreach (var deployment in deployments)
        foreach (var container in Containers(deployment))
        {
            var settings = new Dictionary<string, string?>
            {
                // What `join` assumes unless told otherwise (a cluster on Azure Storage), as the silo's ClusterOptions.Defaults.
                ["Silo:Storage"] = "AzureStorage", ["Blobs:Kind"] = "Azure",
            };
            foreach (var variable in container["env"]!.AsArray().Select(e => e!.AsObject()))
            {
                var name = (string)variable["name"]!;
                string? value = (string?)variable["value"];
                if (variable["valueFrom"]?["secretKeyRef"] is { } secret)
                {
                    Assert.True(secrets.TryGetValue((string)secret["name"]!, out var data), $"{name}: no secret {secret["name"]}");
                    Assert.NotNull((string?)data![(string)secret["key"]!]);
                    // The secret's value is a placeholder for the user's connection string: stand in a real one.
                    value = $"DefaultEndpointsProtocol=https;AccountName={AzuriteProcess.AccountName};AccountKey={AzuriteProcess.AccountKey};EndpointSuffix=core.windows.net";
                }
                else if (variable["valueFrom"]?["fieldRef"] is { } field)
                {
                    var path = (string)field["fieldPath"]!;
                    value = path switch
                    {
                        "status.podIP" => "10.1.2.3",
                        "metadata.name" or "metadata.namespace" => "pod",
                        _ when path.StartsWith("metadata.labels['", StringComparison.Ordinal) =>
                            (string?)deployment["spec"]!["template"]!["metadata"]!["labels"]![path["metadata.labels['".Length..^2]]
                            ?? throw new Xunit.Sdk.XunitException($"{name} reads label {path}, which the pod does not have"),
                        _ => throw new Xunit.Sdk.XunitException($"{name}: unknown field {path}"),
                    };
                }
                if (!name.StartsWith("DAPO_", StringComparison.Ordinal)) continue;
                var key = name["DAPO_".Length..].Replace("__", ":");
                Assert.Contains(key.Split(':')[0], new[] { "Silo", "Blobs", "Redis", HttpSettings.SectionName });
                settings[key] = value;
            }
            var args = container["args"]!.AsArray().Select(a => (string)a!).ToList();
            Assert.Equal("join", args[0]);
            settings["Silo:Roles"] = args[args.IndexOf("--roles") + 1];
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();

            // Unknown keys and invalid values throw here, as they stop a silo before it starts.
            var silo = SiloSettings.Read(configuration);
            var (http, errors) = HttpSettings.Read(configuration);
            Assert.Empty(errors);
            Assert.NotNull(http);
            Assert.Equal("0.0.0.0", http!.Address);

            // The pod's cluster ids (Orleans' Kubernetes hosting) are the silo's.
            var labels = deployment["spec"]!["template"]!["metadata"]!["labels"]!;
            Assert.Equal(silo.Silo.ClusterId, (string?)labels["orleans/clusterId"]);
            Assert.Equal(silo.Silo.ClusterId, (string?)labels["orleans/serviceId"]);

            // Ports: the ones the silo is told to use are the container's; the probes ask the health endpoint.
            var ports = container["ports"]!.AsArray().Select(p => int.Parse((string)p!["containerPort"]!)).ToList();
            Assert.Contains(silo.Silo.SiloPort, ports);
            Assert.Contains(silo.Silo.GatewayPort, ports);
            Assert.Contains(http.Port!.Value, ports);
            foreach (var probe in new[] { "readinessProbe", "livenessProbe" })
            {
                Assert.Equal("/healthz", (string?)container[probe]!["httpGet"]!["path"]);
                Assert.Equal(http.Port.ToString(), (string?)container[probe]!["httpGet"]!["port"]);
            }
            Assert.Equal(http.Port.ToString(), (string?)deployment["spec"]!["template"]!["metadata"]!["annotations"]!["prometheus.io/port"]);
        }
    }

    [Fact]
    public void Selectors_match_their_pods_and_the_service_account_may_do_what_Orleans_Kubernetes_hosting_does()
    {
        var accounts = OfKind("ServiceAccount").Select(Name).ToList();
        foreach (var deployment in OfKind("Deployment"))
        {
            var labels = deployment["spec"]!["template"]!["metadata"]!["labels"]!.AsObject();
            foreach (var (key, value) in deployment["spec"]!["selector"]!["matchLabels"]!.AsObject())
                Assert.Equal((string?)value, (string?)labels[key]);
            Assert.Contains((string)deployment["spec"]!["template"]!["spec"]!["serviceAccountName"]!, accounts);
        }
        var learner = OfKind("Deployment").Single(d => (string?)d["spec"]!["template"]!["metadata"]!["labels"]!["dapo/role"] == "learner");
        Assert.Equal("2", (string?)learner["spec"]!["replicas"]);  // one trains, one stands by
        Assert.Contains("learner", Containers(learner).Single()["args"]!.AsArray().Select(a => (string)a!));
        var rollout = OfKind("Deployment").Single(d => (string?)d["spec"]!["template"]!["metadata"]!["labels"]!["dapo/role"] == "rollout");
        Assert.Equal("1", (string?)Containers(rollout).Single()["resources"]!["limits"]!["nvidia.com/gpu"]);
        Assert.NotEmpty(rollout["spec"]!["template"]!["spec"]!["nodeSelector"]!.AsObject());

        var role = Assert.Single(OfKind("Role"));
        var rule = role["rules"]!.AsArray().Single(r => r!["resources"]!.AsArray().Any(x => (string?)x == "pods"))!;
        Assert.Superset(new HashSet<string> { "get", "watch", "list", "delete", "patch" }, rule["verbs"]!.AsArray().Select(v => (string)v!).ToHashSet());
        var binding = Assert.Single(OfKind("RoleBinding"));
        Assert.Equal(Name(role), (string?)binding["roleRef"]!["name"]);
        Assert.All(binding["subjects"]!.AsArray(), s => Assert.Contains((string)s!["name"]!, accounts));
    }

    [Fact]
    public void The_autoscaler_scales_the_rollout_deployment_on_a_metric_the_silo_exports()
    {
        var hpa = Assert.Single(OfKind("HorizontalPodAutoscaler"));
        var target = OfKind("Deployment").Single(d => Name(d) == (string)hpa["spec"]!["scaleTargetRef"]!["name"]!);
        Assert.Equal("rollout", (string?)target["spec"]!["template"]!["metadata"]!["labels"]!["dapo/role"]);
        var metric = (string)hpa["spec"]!["metrics"]![0]!["external"]!["metric"]!["name"]!;

        // The silo's instruments, by the names the Prometheus exporter gives them ("dapo.step.groups_waiting" -> dapo_step_groups_waiting).
        using var services = new ServiceCollection().AddMetrics().AddSingleton<DapoMetrics>().BuildServiceProvider();
        var names = new List<string>();
        using var listener = new MeterListener { InstrumentPublished = (i, _) => { if (i.Meter.Name == DapoMetrics.MeterName) names.Add(i.Name.Replace('.', '_')); } };
        listener.Start();
        _ = services.GetRequiredService<DapoMetrics>();
        Assert.Contains(metric, names);
    }
}
