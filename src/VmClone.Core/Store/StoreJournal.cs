using System;
using System.IO;

namespace VmClone.Core.Store;

// The journal: a staging folder's plan.json records how far an operation got. Recovery reads it
// and finishes or undoes the operation, never anything in between:
//   no plan.json, or Phase Preparing   new files were still being built beside the subject;
//                                     nothing of the subject was touched  -> undo (delete them)
//   Phase Reparenting                 every new file is complete; data volumes are being
//                                     re-parented in place (each step keeps the content and can
//                                     be repeated)                        -> finish
//   Phase Committing                  new volumes are being put in place: staged files moved
//                                     over, or files rewritten in place as new children (each
//                                     can be done again)                   -> finish
//   .removing-* folder                the subject was renamed away         -> finish the deletion
// A commit's last two steps (delete plan.json, delete the folder) cannot be one: cut off between
// them, or just before them, a finished operation leaves an empty folder or one holding only a
// plan.json whose manifest is already in place. Such a leftover is nothing to finish or undo:
// Test-VmStore does not call it a problem, and recovery (-Repair, the next command on the
// subject) simply deletes it.
// Recovery of a subject runs under that subject's exclusive lock: at the start of every changing
// command on it, and for the whole store in Test-VmStore -Repair.

/// <summary>How far an operation recorded in a work folder's plan.json got (see <see cref="StoreJournal"/>); written by name.</summary>
public enum JournalPhase
{
    /// <summary>New files are being built beside the subject; never written (a staging folder without plan.json is one being prepared).</summary>
    Preparing,

    /// <summary>Every new file is complete; data volumes are being re-parented in place.</summary>
    Reparenting,

    /// <summary>New volumes are being put in place, then the manifest written.</summary>
    Committing,
}

/// <summary>A work folder's plan.json: the operation it records, and the phase it reached.</summary>
internal static class StoreJournal
{
    /// <summary>Records <paramref name="plan"/> in <paramref name="dir"/> as having reached <paramref name="phase"/> (atomically).</summary>
    public static void Write(string dir, StorePlan plan, JournalPhase phase)
    {
        plan.Phase = phase;
        Manifest.Write(Path.Combine(dir, StoreLayout.PlanFile), plan);
    }

    /// <summary>Deletes the journal: a folder left with files but no plan is an undo.</summary>
    public static void Delete(string dir) => File.Delete(Path.Combine(dir, StoreLayout.PlanFile));

    public static StorePlan? Read(string dir)
    {
        string planPath = Path.Combine(dir, StoreLayout.PlanFile);
        try
        {
            // Never a link or a FIFO, never a huge file: such a plan.json was never ours.
            return Manifest.Deserialize<StorePlan>(RecordFile.ReadAllText(planPath, Manifest.MaxManifestBytes));
        }
        catch (RecordFileRefusal)
        {
            return null;
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
        catch (System.Text.Json.JsonException)
        {
            // plan.json is written atomically: a damaged one was never a committed intent.
            return null;
        }
        catch (IOException)
        {
            return null;
        }
    }

}
