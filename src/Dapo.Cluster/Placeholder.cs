namespace Dapo.Cluster;
