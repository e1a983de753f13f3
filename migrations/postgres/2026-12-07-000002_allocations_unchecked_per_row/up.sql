-- An allocation's two foreign keys cost half of what a batch of submissions costs the
-- database: each of a submission's ten rows ran two referential checks (a query and a row
-- lock each), and every concurrent writer locked the same ten category rows. Measured with
-- pgbench, 20 submissions per transaction: 3,450-3,550 submissions/s with them, 7,270-7,370/s
-- without (README, Benchmarks). Both references hold by construction instead:
-- * an allocation is written only by the statement that writes its submission, joined to
--   the submissions that statement inserted, and submissions are never deleted;
-- * its category was checked against the catalogue before the submission was accepted, and
--   the trigger below keeps a category that allocations name from being deleted or renumbered
--   (it runs on writes to the ten-row catalogue, never on a submission).
ALTER TABLE allocations
    DROP CONSTRAINT allocations_submission_id_fkey,
    DROP CONSTRAINT allocations_category_id_fkey;

CREATE FUNCTION categories_keep_allocated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    IF EXISTS (SELECT 1 FROM allocations WHERE category_id = OLD.id LIMIT 1) THEN
        RAISE foreign_key_violation
            USING MESSAGE = format('category %s is named by allocations', OLD.id);
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;

CREATE TRIGGER categories_keep_allocated
    BEFORE DELETE OR UPDATE OF id ON categories
    FOR EACH ROW EXECUTE FUNCTION categories_keep_allocated();
