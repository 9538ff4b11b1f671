using System.Text;
using Microsoft.EntityFrameworkCore;

namespace RolloutGate.Infrastructure.Database;

/// <summary>The service's tables. The schema itself is owned by the SQL files in <c>migrations/</c>, not by EF.</summary>
public sealed class RolloutGateDbContext(DbContextOptions<RolloutGateDbContext> options) : DbContext(options)
{
    public DbSet<RunbookVersionRow> RunbookVersions => Set<RunbookVersionRow>();

    public DbSet<DeploymentRow> Deployments => Set<DeploymentRow>();

    public DbSet<WebhookDeliveryRow> WebhookDeliveries => Set<WebhookDeliveryRow>();

    public DbSet<DecisionRow> Decisions => Set<DecisionRow>();

    public DbSet<AuditEventRow> AuditEvents => Set<AuditEventRow>();

    protected override void OnModelCreating(ModelBuilder modelBuilder)
    {
        modelBuilder.Entity<RunbookVersionRow>().ToTable("runbook_versions");
        modelBuilder.Entity<DeploymentRow>(deployment =>
        {
            deployment.ToTable("deployments");
            deployment.HasOne(d => d.RunbookVersion).WithMany().HasForeignKey(d => d.RunbookVersionId);
            deployment.HasMany(d => d.Decisions).WithOne().HasForeignKey(d => d.DeploymentId);
        });
        modelBuilder.Entity<WebhookDeliveryRow>(delivery =>
        {
            delivery.ToTable("webhook_deliveries");
            delivery.HasKey(d => d.DeliveryId);
        });
        modelBuilder.Entity<DecisionRow>().ToTable("decisions");
        modelBuilder.Entity<AuditEventRow>().ToTable("audit_events");

        foreach (var entity in modelBuilder.Model.GetEntityTypes())
        {
            foreach (var property in entity.GetProperties())
            {
                property.SetColumnName(ToSnakeCase(property.Name));
            }
        }
    }

    private static string ToSnakeCase(string name)
    {
        var builder = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (char.IsUpper(name[i]) && i > 0)
            {
                builder.Append('_');
            }

            builder.Append(char.ToLowerInvariant(name[i]));
        }

        return builder.ToString();
    }
}
