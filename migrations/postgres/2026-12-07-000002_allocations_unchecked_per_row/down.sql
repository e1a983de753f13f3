DROP TRIGGER categories_keep_allocated ON categories;
DROP FUNCTION categories_keep_allocated();
ALTER TABLE allocations
    ADD CONSTRAINT allocations_submission_id_fkey
        FOREIGN KEY (submission_id) REFERENCES submissions (id),
    ADD CONSTRAINT allocations_category_id_fkey
        FOREIGN KEY (category_id) REFERENCES categories (id);
